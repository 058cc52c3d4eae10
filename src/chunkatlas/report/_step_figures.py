"""Figures of the workflow's jobs: what each analysis pass reads, each step's seconds and peak
memory, the stores' size on disk and what a run through an object store moves."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from chunkatlas.errors import ChunkatlasError  # noqa: E402
from chunkatlas.report._figures import (  # noqa: E402
    _geometry_grid,
    _lines,
    _panels,
    _save,
    drawn_geometry,
    plot_message,
)


def passes_figure(passes: pd.DataFrame) -> plt.Figure:
    """Requests, MB and seconds of each analysis pass that reads X (columns, in the order they
    run) against chunk size."""
    reading = passes.groupby("step")["requests"].max()
    steps = passes[passes["step"].isin(reading[reading > 0].index)].sort_values("order")
    panels = [
        [
            (rows, "requests", "requests", step),
            (rows.assign(mb=rows["bytes"] / 1e6), "mb", "MB read", ""),
            (rows, "seconds", "seconds", ""),
        ]
        for step, rows in steps.groupby("step", sort=False)
    ]
    where = ", ".join(sorted(passes["read"].unique()))
    title = f"Analysis passes: what each chunk size costs (read: {where})"
    return _panels(panels, f"{title}\n{drawn_geometry(passes)}")


def plot_passes(passes: pd.DataFrame, out: str | os.PathLike) -> None:
    """:func:`passes_figure`, or a figure saying why there is none."""
    if passes.empty or not (passes["requests"] > 0).any():
        plot_message("no analysis recorded its reads", out)
    else:
        _save(passes_figure(passes), out)


def _tissue_bars(summary: pd.DataFrame, column: str, ylabel: str, title: str):
    """A panel drawer: ``column`` as one bar per tissue (coloured as the tissue's lines are),
    for a step that runs once per tissue."""

    def draw(ax) -> None:
        values = summary.groupby("tissue", sort=True)[column].max()
        colours = [f"C{i % 10}" for i in range(len(values))]
        bars = ax.bar(range(len(values)), values.to_numpy(), color=colours, width=0.6)
        ax.bar_label(bars, fmt="{:,.3g}", fontsize=7)
        ax.set_xticks(range(len(values)), list(values.index))
        highest = float(values.max())
        ax.set_ylim(0, 1.15 * highest if highest > 0 else 1)
        ax.set_xlabel("tissue")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, axis="y")

    return draw


def measured_steps(summary: pd.DataFrame) -> list[str]:
    """The steps the summary holds seconds and peak memory of (``STEP_seconds`` and
    ``STEP_max_rss_mb``), in its column order."""
    return [
        column.removesuffix("_seconds")
        for column in summary.columns
        if column.endswith("_seconds")
        and f"{column.removesuffix('_seconds')}_max_rss_mb" in summary
    ]


def steps_figure(summary: pd.DataFrame, per_tissue: Sequence[str] = ()) -> plt.Figure:
    """Seconds and peak memory of each workflow step: the steps of one job per store against
    chunk size, a line per tissue; those of one job per tissue (``per_tissue``, e.g. fetch,
    before any chunking, and remote, measuring all of a tissue's stores) as a bar per tissue
    in the first columns, since against chunk size they would be flat by construction."""
    steps = measured_steps(summary)
    panels = [
        [
            _tissue_bars(summary, f"{step}_seconds", "seconds", f"{step} (once per tissue)"),
            _tissue_bars(summary, f"{step}_max_rss_mb", "peak memory (MB)", ""),
        ]
        for step in steps
        if step in per_tissue
    ]
    panels += [
        [
            (summary, f"{step}_seconds", "seconds", step),
            (summary, f"{step}_max_rss_mb", "peak memory (MB)", ""),
        ]
        for step in steps
        if step not in per_tissue
    ]
    per = (
        "per tissue and per chunk size" if any(callable(c[0]) for c in panels) else "per chunk size"
    )
    title = f"Workflow steps: time and peak memory, {per}"
    return _panels(panels, f"{title}\n{drawn_geometry(summary)}")


def plot_steps(
    summary: pd.DataFrame, out: str | os.PathLike, per_tissue: Sequence[str] = ()
) -> None:
    _save(steps_figure(summary, per_tissue), out)


def store_size_figure(summary: pd.DataFrame) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(5, 4), dpi=110)
    title = f"Store size on disk\n{drawn_geometry(summary)}".replace("; ", ";\n")
    _lines(ax, summary.assign(mb=summary["store_bytes"] / 1e6), "mb", "stored MB", title)
    ax.legend(title="tissue", fontsize=8)
    fig.tight_layout()
    return fig


def plot_store_size(summary: pd.DataFrame, out: str | os.PathLike) -> None:
    _save(store_size_figure(summary), out)


def moved_figure(summary: pd.DataFrame) -> plt.Figure:
    """What a run that keeps its outputs in an object store moves per geometry: objects (one
    request each) and MB, every job of the store and its analysis together (the summary's
    ``moved_objects`` and ``moved_bytes``); a column per orientation and codec."""
    if "moved_objects" not in summary.columns:
        raise ChunkatlasError("the summary records no objects moved (no objects records)")
    rows = summary.dropna(subset=["moved_objects"])

    def column(by_codec: pd.DataFrame, heading: str) -> list[tuple]:
        return [
            (by_codec, "moved_objects", "objects moved (= requests)", heading, {"logy": True}),
            (by_codec.assign(mb=by_codec["moved_bytes"] / 1e6), "mb", "MB moved", ""),
        ]

    title = "Through an object store: what each geometry's jobs move per run"
    return _geometry_grid(rows, column, title)


def plot_moved(summary: pd.DataFrame, out: str | os.PathLike) -> None:
    _save(moved_figure(summary), out)
