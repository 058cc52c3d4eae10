"""The cost model checked on its own prediction: fitted on a small study run, it predicts the
million-cell stores of ``benchmarks.geometry_study``; this prints its errors.

    python -m benchmarks.model_check --study benchmarks/results/geometry_study \
        [--model results/geometry/cost_model.json]

For every measured read of an X pattern: the requests, bytes and seconds the model predicts from
the store's size and layout alone, against what the study measured.  Bytes are predicted twice:
with the model's encoding (bytes per stored value measured on the small run's data), and with the
store's own (its manifest's bytes per value), which separates the traffic model's error from how
differently the two datasets compress.  Seconds only where the read went through the emulated
object-store network.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from chunkatlas.model import (
    X_PATTERNS,
    Atlas,
    Encoding,
    Layout,
    load_cost_model,
    predict_traffic,
)


def checked(study: Path, model_path: str | None) -> pd.DataFrame:
    model = load_cost_model(model_path)
    stores = pd.read_csv(study / "stores.tsv", sep="\t").set_index("store")
    patterns = pd.read_csv(study / "patterns.tsv", sep="\t")
    rows = []
    for read in patterns[patterns["pattern"].isin(X_PATTERNS)].itertuples():
        store = stores.loc[read.store]
        atlas = Atlas(int(store.cells), int(store.genes), int(store.nnz))
        layout = Layout(store.orientation, int(store.chunk), int(store.shard), store.codec)
        encoding = model.encodings[(layout.orientation, layout.codec)]
        pointers = (atlas.n_obs if layout.orientation == "cells" else atlas.n_vars) + 1
        own = Encoding(
            (read.x_bytes - read.indptr_bytes) / atlas.nnz,
            read.indptr_bytes / pointers,
            encoding.decode_seconds_per_byte,
        )
        extra = model.extra_requests.get((read.pattern, layout.orientation, layout.shard > 1), 0)
        modelled = predict_traffic(atlas, layout, read.pattern, encoding, extra)
        exact = predict_traffic(atlas, layout, read.pattern, own, extra)
        row = {
            "store": read.store,
            "network": read.network,
            "backend": read.backend,
            "pattern": read.pattern,
            "requests": read.requests,
            "predicted_requests": modelled.requests,
            "MB": read.bytes / 1e6,
            "predicted_MB": modelled.bytes / 1e6,
            "predicted_MB_own_encoding": exact.bytes / 1e6,
            "seconds": read.seconds,
        }
        if read.network == "object_store" and read.backend in model.fit.backends:
            x_bytes = encoding.x_bytes(atlas, layout.orientation)
            design = pd.DataFrame(
                {
                    "requests": [modelled.requests],
                    "bytes": [modelled.bytes],
                    "store_bytes": [x_bytes],
                    "decode_seconds": [encoding.decode_seconds_per_byte * x_bytes],
                    "pattern": [read.pattern],
                }
            )
            row["predicted_seconds"] = float(model.fit[read.backend].predict(design)[0])
        rows.append(row)
    table = pd.DataFrame(rows)
    table["requests_error"] = table["predicted_requests"] - table["requests"]
    table["MB_error"] = table["predicted_MB"] / table["MB"] - 1
    table["MB_error_own_encoding"] = table["predicted_MB_own_encoding"] / table["MB"] - 1
    if "predicted_seconds" in table:
        table["seconds_error"] = table["predicted_seconds"] / table["seconds"] - 1
    return table


def summary(table: pd.DataFrame) -> str:
    exact = int((table["requests_error"] == 0).sum())
    lines = [
        f"reads checked: {len(table)}; requests predicted exactly: {exact} of {len(table)}",
        f"bytes, model's encoding: median |error| {table['MB_error'].abs().median():.1%}, "
        f"largest {table['MB_error'].abs().max():.1%}",
        f"bytes, the store's own encoding: median |error| "
        f"{table['MB_error_own_encoding'].abs().median():.1%}, largest "
        f"{table['MB_error_own_encoding'].abs().max():.1%}",
    ]
    if "seconds_error" in table:
        timed = table["seconds_error"].dropna().abs()
        lines.append(
            f"seconds (emulated object store, {len(timed)} reads): median |error| "
            f"{timed.median():.1%}, within 30 %: {int((timed <= 0.3).sum())} of {len(timed)}"
        )
    wrong = table[table["requests_error"] != 0]
    for row in wrong.itertuples():
        lines.append(
            f"  requests off: {row.store} {row.pattern} over {row.backend}: "
            f"{row.requests} measured, {row.predicted_requests} predicted"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=Path, default=Path("benchmarks/results/geometry_study"))
    parser.add_argument("--model", default=None, help="cost_model.json (default: the reference)")
    args = parser.parse_args()
    table = checked(args.study, args.model)
    table.to_csv(args.study / "model_check.tsv", sep="\t", index=False)
    print(summary(table))
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print(table.round(3).replace({np.nan: ""}).to_string(index=False))


if __name__ == "__main__":
    main()
