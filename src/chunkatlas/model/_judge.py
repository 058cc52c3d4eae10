"""Judging a cost model on a study it was not fitted on: the regret of the layouts it picks,
and its errors on the study's reads.

The regret of a pick is its measured seconds over the best measured seconds of that backend
and pattern, over every layout measured (the grid and the picks): 1.0 when the model picked the
fastest layout, 1.5 when its pick took half as long again.  The errors compare what the model
predicts for each measured read (its requests and bytes from the layout and the read's
recorded ranges, its seconds from the coefficients) with what was measured.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from chunkatlas.errors import ChunkatlasError

LAYOUT = ["orientation", "chunk", "shard", "codec"]
KEYS = ["backend", "pattern"]
NETWORK = ["latency_ms", "bandwidth_mbps"]  # the emulated network a read was measured on


def regret_table(measured: pd.DataFrame, picks: pd.DataFrame) -> pd.DataFrame:
    """Per backend and pattern of ``picks`` (one layout each): the pick, its measured seconds,
    the fastest measured layout and its seconds, and the regret (pick / fastest).

    ``measured`` has a row per layout, backend and pattern (a study's remote table; repeated
    rows, e.g. tissues, are averaged).  A pick that was not measured is an error naming it."""
    missing = [c for c in (*KEYS, *LAYOUT, "seconds") if c not in measured.columns]
    if missing:
        raise ChunkatlasError(f"the regret needs column(s) {', '.join(missing)} of the reads")
    seconds = measured.groupby([*KEYS, *LAYOUT], as_index=False)["seconds"].mean()
    rows = []
    for pick in picks.itertuples(index=False):
        reads = seconds[(seconds["backend"] == pick.backend) & (seconds["pattern"] == pick.pattern)]
        chosen = reads
        for column in LAYOUT:
            chosen = chosen[chosen[column] == getattr(pick, column)]
        if chosen.empty:
            layout = store_name(pd.Series(pick._asdict()))
            raise ChunkatlasError(
                f"the pick {layout} for {pick.pattern} over {pick.backend} was not measured"
            )
        best = reads.loc[reads["seconds"].idxmin()]
        rows.append(
            {
                "backend": pick.backend,
                "pattern": pick.pattern,
                "pick": store_name(chosen.iloc[0]),
                "pick_seconds": float(chosen["seconds"].iloc[0]),
                "fastest": store_name(best),
                "fastest_seconds": float(best["seconds"]),
                "layouts": len(reads),
                "regret": float(chosen["seconds"].iloc[0] / best["seconds"]),
            }
        )
    return pd.DataFrame(rows)


def store_name(row) -> str:
    """A layout as the workflow names its store's folder: cells-10000-shard-1-packed."""
    return f"{row['orientation']}-{row['chunk']}-shard-{row['shard']}-{row['codec']}"


def prediction_errors(reads: pd.DataFrame) -> dict[str, float]:
    """How far predictions are from measurements over ``reads`` (with ``seconds``,
    ``predicted_seconds``, and optionally ``requests``/``predicted_requests`` and
    ``bytes``/``predicted_bytes``): the median relative error of seconds, the share of reads
    within 2x, the share with exact requests and the largest relative error of bytes."""
    if reads.empty:
        raise ChunkatlasError("no reads to judge the model on")
    ratio = reads["predicted_seconds"] / reads["seconds"]
    errors = {
        "reads": float(len(reads)),
        "seconds_median_error": float(np.median(np.abs(ratio - 1))),
        "seconds_within_2x": float(((ratio <= 2) & (ratio >= 0.5)).mean()),
    }
    if "predicted_requests" in reads:
        errors["requests_exact"] = float((reads["predicted_requests"] == reads["requests"]).mean())
    if "predicted_bytes" in reads:
        relative = np.abs(reads["predicted_bytes"] / reads["bytes"] - 1)
        errors["bytes_largest_error"] = float(relative.max())
    return errors


def advised_picks(source: str, backends, model=None) -> dict:
    """What ``chunkatlas advise SOURCE --backend B`` advises per X pattern for each of
    ``backends``, with the same calls (the source's size, its own bytes per value, every
    candidate's predictions and store objects, the near-tie pick; no ``--max-objects``, the
    reader the model was fitted on), as JSON-able data: the atlas, the encodings the picks were
    made with (None: the model's), the line saying where they come from, and one record per
    pick (its layout, ``store`` name and predictions).  ``model``: a :class:`CostModel`
    (None: the reference model shipped)."""
    from dataclasses import asdict, replace

    from chunkatlas.model._advice import best_per_pattern, predictions, with_store_objects
    from chunkatlas.model._cost_model import load_cost_model
    from chunkatlas.model._objects import columns_of
    from chunkatlas.model._own_encoding import source_encodings
    from chunkatlas.model._sources import atlas_of
    from chunkatlas.model._traffic import X_PATTERNS

    model = model or load_cost_model()
    atlas = atlas_of(source)
    own, measured = source_encodings(source, model.encodings)
    priced = replace(model, encodings=own) if own else model
    columns = columns_of(source)
    picks = []
    for backend in backends:  # predictions refuses a backend the model has no fit for
        table = predictions(atlas, priced, backend, list(X_PATTERNS))
        best = best_per_pattern(with_store_objects(table, atlas, columns))
        best.insert(0, "backend", backend)
        best.insert(1, "reader", priced.fit[backend].reader)
        picks.append(best)
    table = pd.concat(picks, ignore_index=True)
    table.insert(2, "store", [store_name(row) for _, row in table.iterrows()])
    encodings = (
        [{"orientation": o, "codec": c, **asdict(e)} for (o, c), e in sorted(own.items())]
        if own
        else None
    )
    return {
        "atlas": asdict(atlas),
        "encodings": encodings,
        "encodings_text": measured,
        "origin": model.origin,
        "picks": table.to_dict(orient="records"),
    }


def model_of_picks(picked: dict, model=None):
    """``model`` (None: the reference model) with the encodings ``picked``'s picks were made
    with (:func:`advised_picks`)."""
    from dataclasses import replace

    from chunkatlas.model._cost_model import load_cost_model
    from chunkatlas.model._traffic import Encoding

    model = model or load_cost_model()
    if not picked["encodings"]:
        return model
    found = {
        (e["orientation"], e["codec"]): Encoding(
            **{k: v for k, v in e.items() if k not in ("orientation", "codec")}
        )
        for e in picked["encodings"]
    }
    return replace(model, encodings=found)


def predicted_reads(reads: pd.DataFrame, atlas, model) -> tuple[pd.DataFrame, list[str]]:
    """Per measured read of X in ``reads`` (a row per store, backend and pattern, with the
    store's layout, ``store`` name and the study's columns): the model's pure prediction from
    the layout and the atlas's size, as :func:`~chunkatlas.model.predictions` makes it
    (requests, objects read and bytes from the read's recorded ranges, X's bytes and decode
    seconds from the encoding, seconds from the backend's fit for its reader), beside what
    was measured.  Also the stores the model has no encoding for (none predicted)."""
    from chunkatlas.model._traffic import X_PATTERNS, Layout, predict_traffic
    from chunkatlas.study import parse_ranges

    rows, unpredicted = [], []
    for read in reads[reads["pattern"].isin(X_PATTERNS)].to_dict("records"):
        layout = Layout(read["orientation"], int(read["chunk"]), int(read["shard"]), read["codec"])
        encoding = model.encodings.get((layout.orientation, layout.codec))
        if encoding is None:
            unpredicted.append(read["store"])
            continue
        extra = model.extra_requests.get((read["pattern"], layout.orientation, layout.shard > 1), 0)
        ranges = parse_ranges(read["ranges"])
        traffic = predict_traffic(atlas, layout, read["pattern"], encoding, extra, ranges=ranges)
        rows.append(
            {
                "store": read["store"],
                "backend": read["backend"],
                "pattern": read["pattern"],
                **{column: read[column] for column in LAYOUT},
                **{column: read[column] for column in NETWORK if column in read},
                "requests": int(read["requests"]),
                "predicted_requests": traffic.requests,
                "objects_read": traffic.objects_read,
                "bytes": int(read["bytes"]),
                "predicted_bytes": traffic.bytes,
                "x_bytes": read["x_bytes"],
                "predicted_x_bytes": encoding.x_bytes(atlas, layout.orientation),
                "decode_seconds": read["decode_seconds"],
                "predicted_decode_seconds": encoding.decode_seconds(atlas, layout),
                "seconds": read["seconds"],
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return table, sorted(set(unpredicted))
    table["predicted_seconds"] = np.nan
    for backend, index in table.groupby("backend").groups.items():
        fit = model.fit[str(backend)]
        table.loc[index, "predicted_seconds"] = fit.predict(pure_rows(table.loc[index]), fit.reader)
    table["seconds_ratio"] = table["predicted_seconds"] / table["seconds"]
    table["bytes_error"] = table["predicted_bytes"] / table["bytes"] - 1
    table["requests_error"] = table["predicted_requests"] - table["requests"]
    return table, sorted(set(unpredicted))


def pure_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`predicted_reads` as the model sees a layout it predicts: its
    predicted requests and bytes, X's predicted stored bytes and decode seconds."""
    return table.assign(
        requests=table["predicted_requests"],
        bytes=table["predicted_bytes"],
        store_bytes=table["predicted_x_bytes"],
        decode_seconds=table["predicted_decode_seconds"],
    )
