"""Fit the reference cost model shipped with chunkatlas on reads of atlas-sized stores.

    python -m benchmarks.reference_model            # fit, print, write the package's model
                                                    # and docs/reference_cost_fit.png
    python -m benchmarks.reference_model --check    # fit and print only
    python -m benchmarks.reference_model --run results/atlas   # fit on a workflow run instead

``--run`` fits on a workflow run's reads (its ``remote.tsv`` and ``summary.tsv``), as the run's
own summary fits its ``cost_model.json``, with what it was fitted on taken from the run:
``snakemake --cores 2 --configfile config/atlas.yaml`` is the atlas-scale study as a workflow.
Without it:

The reads are the million-cell study's (``benchmarks/README.md``, "Store geometry at a million
cells", measured 2026-12-02): 1,000,000 cells x 20,000 genes, 1,028.9 stored values per cell,
four stores (cell-major 10,000 cells per chunk in packed and in zstd; gene-major 200 genes per
chunk, and 20 genes per chunk x 16 per shard, packed), every pattern over HTTP (aiohttp) and S3
(moto) behind a 30 ms, 160 Mbit/s emulated network, one cold read each, read by plain anndata.
``benchmarks/reference/million_cell_reads.tsv`` holds them as that page's tables give them
(requests exact, MB to 2-4 digits); ``all_x`` of the zstd and the sharded store was read on
bare loopback and is left out.  Each store's decode pass (seconds to decode X once, locally)
gives the decode terms: a time per chunk and a rate per codec and orientation.

What the study cannot give is kept from the demo study's model (the package's previous
reference): the requests a reader makes beyond a layout's ranges (a property of anndata, not of
the atlas's size) and the bytes per pointer of ``indptr`` (under 0.5 % of X).
"""

from __future__ import annotations

import argparse
import json
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd

from chunkatlas.model import (
    REFERENCE_ORIGIN,
    CostModel,
    build_cost_model,
    encodings,
    fit_costs,
    predicted,
)

READS = Path(__file__).with_name("reference") / "million_cell_reads.tsv"
FIGURE = Path(__file__).parents[1] / "docs" / "reference_cost_fit.png"
PROVENANCE = {
    "tissue": "synthetic, 1,000,000 cells x 20,000 genes, 1,028.9 values per cell",
    "reads": "4 stores x 5 patterns x HTTP and S3, one cold read each (32 on the emulated network)",
    "network": "30 ms to the first byte, 160 Mbit/s per response (emulated, loopback servers)",
    "reader": "plain anndata 0.13 / zarr 3 (10 requests in flight)",
    "date": "2026-12-02 (reads), 2026-12-07 (fit)",
    "machine": "2 cores (AMD EPYC, KVM), 24 GiB; loaded by other runs, see benchmarks/README.md",
}


def previous_model() -> dict:
    """The shipped model as written before this fit (what it keeps from it: module doc)."""
    return json.loads(files("chunkatlas.model").joinpath("reference_cost_model.json").read_text())


def reads() -> pd.DataFrame:
    """The study's reads, with each store's indptr bytes from the previous model's encoding."""
    table = pd.read_csv(READS, sep="\t")
    previous = previous_model()
    per_pointer = {
        (e["orientation"], e["codec"]): e["bytes_per_pointer"] for e in previous["encodings"]
    }
    pointers = np.where(table["orientation"] == "cells", table["n_obs"], table["n_vars"]) + 1
    kinds = zip(table["orientation"], table["codec"], strict=True)
    table["indptr_bytes"] = pointers * np.array([per_pointer[k] for k in kinds])
    return table


def fit() -> tuple[CostModel, pd.DataFrame]:
    table = reads()
    costs = fit_costs(table, reader="anndata")
    sizes = table.drop_duplicates(["tissue", "orientation", "chunk", "shard", "codec"])
    found = encodings(table.drop(columns=["n_obs", "n_vars", "nnz"]), sizes)
    extra = {
        (e["pattern"], e["orientation"], bool(e["sharded"])): int(e["requests"])
        for e in previous_model()["extra_requests"]
    }
    model = CostModel(
        costs,
        found,
        extra,
        f"the reference cost model, fitted on {REFERENCE_ORIGIN}: 32 reads of 4 stores "
        "(benchmarks/reference_model.py)",
        PROVENANCE,
    )
    return model, predicted(table, costs)


def run_reads(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A workflow run's reads and its stores' sizes (``remote.tsv``, ``summary.tsv``)."""
    remote = pd.read_csv(folder / "remote.tsv", sep="\t", keep_default_na=False, na_values=[""])
    return remote, pd.read_csv(folder / "summary.tsv", sep="\t")


def fit_run(folder: Path) -> tuple[CostModel, pd.DataFrame]:
    """The reference model fitted on a workflow run's reads (module doc)."""
    remote, sizes = run_reads(folder)
    costs = fit_costs(remote, reader="anndata")
    origin = (
        f"the reference cost model, fitted on the workflow run {folder.name} ({len(remote)} "
        "reads; benchmarks/reference_model.py --run)"
    )
    return build_cost_model(remote, sizes, costs, origin), predicted(remote, costs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fit and print, write nothing")
    parser.add_argument("--run", type=Path, help="a workflow run's folder, e.g. results/atlas")
    args = parser.parse_args()
    model, rows = fit() if args.run is None else fit_run(args.run)
    for backend in model.fit.backends:
        print("\n".join(model.describe(backend)))
    rows["error"] = rows["predicted_seconds"] / rows["seconds"] - 1
    columns = ["backend", "orientation", "chunk", "shard", "codec", "pattern", "requests"]
    print(rows[[*columns, "seconds", "predicted_seconds", "error"]].to_string(index=False))
    error = rows["error"].abs()
    print(
        f"median error {error.median():.0%}, within 30 %: {(error <= 0.3).sum()} of {len(rows)}, "
        f"largest {error.max():.0%}"
    )
    if not args.check:
        from chunkatlas.report import plot_cost_fit

        plot_cost_fit(reads() if args.run is None else run_reads(args.run)[0], model.fit, FIGURE)
        print(f"written: {FIGURE}")
        target = Path(str(files("chunkatlas.model").joinpath("reference_cost_model.json")))
        target.write_text(model.to_json() + "\n")
        print(f"written: {target}")


if __name__ == "__main__":
    main()
