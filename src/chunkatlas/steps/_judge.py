"""The steps that judge a cost model by the layouts it picks (the config's ``judge``
section): what ``chunkatlas advise`` picks for a fetched tissue (:func:`pick_layouts`), the
reads of the picked stores outside the grid (:func:`measure_picks`), and the regret of the
picks with the model's errors on every read (:func:`judge`)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from chunkatlas.errors import ChunkatlasError

if TYPE_CHECKING:
    from chunkatlas.settings import RemoteStudy
    from chunkatlas.store import RemoteSettings

LAYOUT = ["orientation", "chunk", "shard", "codec"]


def judged_model(model: str | os.PathLike | None):
    """The cost model a run judges: a study run's ``cost_model.json``, or (None) the
    reference model shipped."""
    from chunkatlas.model import load_cost_model

    return load_cost_model(model)


def check_judge(model: str | os.PathLike | None, backends: Sequence[str]) -> None:
    """Before a run that judges a model: it loads, and has a fit for every remote backend."""
    found = judged_model(model)
    missing = [b for b in backends if b not in found.fit.backends]
    if missing:
        raise ChunkatlasError(
            f"config judge.model: {found.origin} has no fit for backend(s) "
            f"{', '.join(missing)} of remote.backends; it has: {', '.join(found.fit.backends)}"
        )


def pick_layouts(
    fetched: str | os.PathLike,
    output: str | os.PathLike,
    *,
    backends: Sequence[str],
    model: str | os.PathLike | None = None,
) -> dict:
    """Write to ``output`` (JSON) what ``chunkatlas advise`` picks for the fetched tissue,
    per backend and pattern of X (:func:`chunkatlas.model.advised_picks`)."""
    from chunkatlas.model import advised_picks

    picked = advised_picks(str(fetched), list(backends), judged_model(model))
    Path(output).write_text(json.dumps(picked, indent=2) + "\n")
    return picked


def picked_layouts(picks: str | os.PathLike) -> list[dict]:
    """The distinct layouts of a picks file (:func:`pick_layouts`), in its order, each a dict
    of orientation, chunk, shard and codec."""
    found: list[dict] = []
    for pick in json.loads(Path(picks).read_text())["picks"]:
        layout = {key: pick[key] for key in LAYOUT}
        if layout not in found:
            found.append(layout)
    return found


def measure_picks(
    stores: Sequence[str | os.PathLike],
    manifests: Sequence[str | os.PathLike],
    names: Sequence[str],
    table: str | os.PathLike,
    *,
    study: RemoteStudy,
    settings: RemoteSettings,
    processes: int = 1,
) -> pd.DataFrame:
    """Measure the picked stores that are not in the grid as the remote step measures the
    grid's (:func:`chunkatlas.steps.remote`), into one table with each read's ``store``
    (``names``); an empty table when every pick is in the grid."""
    from chunkatlas.steps._study import remote

    if not len(stores) == len(manifests) == len(names):
        raise ChunkatlasError(
            f"{len(stores)} stores, {len(manifests)} manifests and {len(names)} names: "
            "give one of each per picked store"
        )
    frames = []
    if stores:
        with tempfile.TemporaryDirectory(prefix=".picks-", dir=Path(table).parent) as tmp:
            tables = [Path(tmp) / f"{name}.tsv" for name in names]
            measured = remote(
                stores, manifests, tables, study=study, settings=settings, processes=processes
            )
        frames = [t.assign(store=name) for t, name in zip(measured, names, strict=True)]
    found = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["store"])
    found.to_csv(table, sep="\t", index=False)
    return found


def measured_reads(
    grid: Sequence[tuple[str, str | os.PathLike]], picked: str | os.PathLike
) -> pd.DataFrame:
    """Every measured read of a tissue: the grid's (``grid``: each store's name and remote
    table) and the picked stores' outside it (``picked``: :func:`measure_picks`'s table), each
    with its store's name and layout (from the name)."""
    frames = [
        pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""]).assign(store=name)
        for name, path in grid
    ]
    picks = pd.read_csv(picked, sep="\t", keep_default_na=False, na_values=[""])
    if not picks.empty:
        frames.append(picks)
    if not frames:
        raise ChunkatlasError("no measured reads to judge the model on")
    reads = pd.concat(frames, ignore_index=True)
    parts = reads["store"].str.extract(r"^(cells|genes)-(\d+)-shard-(\d+)-(.+)$")
    if parts.isna().any().any():
        bad = reads["store"][parts.isna().any(axis=1)].iloc[0]
        raise ChunkatlasError(
            f"store {bad!r} is not named ORIENTATION-CHUNK-shard-SHARD-CODEC (e.g. "
            "cells-1000-shard-1-packed)"
        )
    for column, values in zip(LAYOUT, (parts[0], parts[1], parts[2], parts[3]), strict=True):
        reads[column] = values.astype(int) if column in ("chunk", "shard") else values
    return reads


def judge(
    picks: str | os.PathLike,
    grid: Sequence[tuple[str, str | os.PathLike]],
    picked: str | os.PathLike,
    *,
    regret: str | os.PathLike,
    predicted: str | os.PathLike,
    figure: str | os.PathLike,
    text: str | os.PathLike,
    model: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """The regret of the picks (``picks``) over every measured layout of the tissue (the
    ``grid``'s stores and the ``picked`` ones outside it), the model's pure prediction of each
    measured read of X with its errors, a predicted-against-measured figure, and the
    judgement in words (markdown).  Returns the regret table."""
    from chunkatlas.model import (
        X_PATTERNS,
        Atlas,
        model_of_picks,
        predicted_reads,
        prediction_errors,
        pure_rows,
        regret_table,
    )
    from chunkatlas.report import plot_cost_fit

    picked_data = json.loads(Path(picks).read_text())
    reads = measured_reads(grid, picked)
    choices = pd.DataFrame(picked_data["picks"])
    regrets = regret_table(reads[reads["pattern"].isin(X_PATTERNS)], choices)
    regrets.to_csv(regret, sep="\t", index=False)
    judged = model_of_picks(picked_data, judged_model(model))
    atlas = Atlas(**picked_data["atlas"])
    rows, unpredicted = predicted_reads(reads, atlas, judged)
    rows.to_csv(predicted, sep="\t", index=False)
    errors = prediction_errors(rows) if not rows.empty else {}
    plot_cost_fit(pure_rows(rows), judged.fit, figure)
    Path(text).write_text(judgement_text(picked_data, regrets, errors, unpredicted))
    return regrets


#: What the judgement is held to (issue targets): regret, seconds, requests, bytes.
TARGETS = {
    "regret": 1.2,
    "seconds_median_error": 0.20,
    "seconds_within_2x": 1.0,
    "requests_exact": 1.0,
    "bytes_largest_error": 0.10,
}


def judgement_text(
    picked: dict, regrets: pd.DataFrame, errors: dict, unpredicted: Sequence[str]
) -> str:
    """The judgement in markdown: the model, the atlas, the regret per backend and pattern,
    and the errors against their targets."""
    atlas = picked["atlas"]
    worst = regrets["regret"].max()
    lines = [
        f"# The cost model judged by its picks: {atlas['n_obs']:,} cells x "
        f"{atlas['n_vars']:,} genes",
        "",
        f"Model: {picked['origin']}.",
        f"Bytes: {picked['encodings_text']}.",
        "",
        "| backend | pattern | pick | pick s | fastest measured | fastest s | layouts | regret |",
        "| --- | --- | --- | ---: | --- | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r.backend} | {r.pattern} | {r.pick} | {r.pick_seconds:.3g} | {r.fastest} | "
        f"{r.fastest_seconds:.3g} | {r.layouts} | {r.regret:.2f} |"
        for r in regrets.itertuples()
    ]
    verdict = "met" if worst <= TARGETS["regret"] else "not met"
    lines += ["", f"- regret, largest: {worst:.2f} (target <= {TARGETS['regret']}): {verdict}"]
    if errors:
        for key, text in (
            ("seconds_median_error", "seconds, median error"),
            ("seconds_within_2x", "seconds, share of reads within 2x"),
            ("requests_exact", "requests, share exact"),
            ("bytes_largest_error", "bytes, largest error"),
        ):
            if key not in errors:
                continue
            value, target = errors[key], TARGETS[key]
            met = value <= target if key.endswith("error") else value >= target
            lines.append(
                f"- {text}: {value:.1%} (target {'<=' if key.endswith('error') else '='} "
                f"{target:.0%}): {'met' if met else 'not met'}"
            )
        lines.append(f"- reads of X predicted: {int(errors['reads'])}")
    if unpredicted:
        lines.append(
            f"- not predicted (no encoding of their orientation and codec in the model): "
            f"{', '.join(unpredicted)}"
        )
    return "\n".join(lines) + "\n"
