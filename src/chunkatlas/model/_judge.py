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
            layout = _name(pd.Series(pick._asdict()))
            raise ChunkatlasError(
                f"the pick {layout} for {pick.pattern} over {pick.backend} was not measured"
            )
        best = reads.loc[reads["seconds"].idxmin()]
        rows.append(
            {
                "backend": pick.backend,
                "pattern": pick.pattern,
                "pick": _name(chosen.iloc[0]),
                "pick_seconds": float(chosen["seconds"].iloc[0]),
                "fastest": _name(best),
                "fastest_seconds": float(best["seconds"]),
                "layouts": len(reads),
                "regret": float(chosen["seconds"].iloc[0] / best["seconds"]),
            }
        )
    return pd.DataFrame(rows)


def _name(row: pd.Series) -> str:
    """A layout as the workflow names its store: cells-10000-shard-1-packed."""
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
