"""Figures of the chunk-size study: one line per tissue against chunk size."""

from __future__ import annotations

import os

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from chunkatlas.summary import STEPS  # noqa: E402

# The remote figure's columns, left to right, and how each pattern's title reads.
PATTERN_TITLES = {
    "one_gene": "one gene",
    "fifty_genes": "{genes} genes",
    "cell_block": "block of {cells} cells",
    "all_x": "all of X",
    "open": "open",
}


def _span(values: pd.Series) -> str:
    """One count, or the range of counts that differ between tissues: "78" or "78–1,000"."""
    low, high = int(values.min()), int(values.max())
    return f"{low:,}" if low == high else f"{low:,}–{high:,}"


def chunk_label(table: pd.DataFrame) -> str:
    """The chunk-size axis label: "cells per chunk" or "genes per chunk"."""
    return " / ".join(sorted(set(table["chunk_unit"]))) + " per chunk"


def _lines(ax, table: pd.DataFrame, column: str, ylabel: str, title: str) -> None:
    """One line per tissue; with ``{column}_min``/``_max`` columns, error bars spanning them."""
    spread = {f"{column}_min", f"{column}_max"} <= set(table.columns)
    for tissue, rows in table.groupby("tissue", sort=True):
        rows = rows.sort_values("chunk")
        yerr = None
        if spread:
            low, high = rows[column] - rows[f"{column}_min"], rows[f"{column}_max"] - rows[column]
            yerr = [low.to_numpy(), high.to_numpy()]
        ax.errorbar(
            rows["chunk"], rows[column], yerr=yerr, marker="o", capsize=3, label=str(tissue)
        )
    ax.set_xscale("log")
    chunks = sorted(table["chunk"].unique())
    ax.set_xticks(chunks, [f"{c:,}" for c in chunks])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    highest = float(table[f"{column}_max" if spread else column].max())
    ax.set_ylim(0, 1.1 * highest if highest > 0 else 1)  # from zero, up to what the data need
    ax.set_xlabel(chunk_label(table))
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)


def _panels(panels: list[list[tuple]], title: str) -> plt.Figure:
    """A figure of :func:`_lines` panels: one column per list, one row per tuple in it."""
    n_rows = len(panels[0])
    width = max(3.2 * len(panels), 6)  # room for the title above a single column
    fig, axes = plt.subplots(
        n_rows, len(panels), figsize=(width, 3 * n_rows), dpi=110, squeeze=False
    )
    for col, column in enumerate(panels):
        for row, spec in enumerate(column):
            _lines(axes[row, col], *spec)
    axes[0, -1].legend(title="tissue", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _save(fig: plt.Figure, out: str | os.PathLike) -> None:
    fig.savefig(out)
    plt.close(fig)


def remote_figure(remote: pd.DataFrame) -> plt.Figure:
    """Requests, MB and seconds (median of the cold reads, bars from the fastest to the
    slowest) per access pattern (columns) against chunk size."""
    panels = []
    for pattern, title in PATTERN_TITLES.items():
        rows = remote[remote["pattern"] == pattern]
        if rows.empty:
            continue
        title = title.format(genes=_span(rows["genes"]), cells=_span(rows["cells"]))
        panels.append(
            [
                (rows, "requests", "HTTP requests", title),
                (rows.assign(mb=rows["bytes"] / 1e6), "mb", "MB transferred", ""),
                (rows, "seconds", "seconds (median)", ""),
            ]
        )
    return _panels(panels, "Remote reads: what each chunk size costs per access pattern")


def plot_remote(remote: pd.DataFrame, out: str | os.PathLike) -> None:
    """:func:`remote_figure`; with no measurements (remote accounting off), a figure that
    says so in its place."""
    if remote.empty:
        fig, ax = plt.subplots(figsize=(5, 2))
        ax.text(0.5, 0.5, "remote accounting disabled (remote.enabled: false)", ha="center")
        ax.axis("off")
    else:
        fig = remote_figure(remote)
    _save(fig, out)


def steps_figure(summary: pd.DataFrame) -> plt.Figure:
    """Seconds and peak memory of each workflow step against chunk size."""
    panels = [
        [
            (summary, f"{step}_seconds", "seconds", step),
            (summary, f"{step}_max_rss_mb", "peak memory (MB)", ""),
        ]
        for step in STEPS
        if f"{step}_seconds" in summary
    ]
    return _panels(panels, "Workflow steps: time and peak memory per chunk size")


def plot_steps(summary: pd.DataFrame, out: str | os.PathLike) -> None:
    _save(steps_figure(summary), out)


def store_size_figure(summary: pd.DataFrame) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(5, 4), dpi=110)
    _lines(
        ax, summary.assign(mb=summary["store_bytes"] / 1e6), "mb", "stored MB", "Store size on disk"
    )
    ax.legend(title="tissue", fontsize=8)
    fig.tight_layout()
    return fig


def plot_store_size(summary: pd.DataFrame, out: str | os.PathLike) -> None:
    _save(store_size_figure(summary), out)
