"""What every figure of the report draws with: lines against chunk size in panels (one line per
tissue, or per shard setting for store geometries), a column of panels per orientation and codec,
plain log ticks, and a figure that says why there is nothing to draw."""

from __future__ import annotations

import math
import os

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

# The remote figure's columns, left to right, and how each pattern's title reads.
PATTERN_TITLES = {
    "one_gene": "one gene",
    "fifty_genes": "{genes} genes",
    "cell_block": "block of {cells} cells",
    "all_x": "all of X",
    "open": "open",
}
MARKERS = "osD^v"  # one per tissue (geometry figure) or backend (cost fit figure)


def _span(values: pd.Series) -> str:
    """One count, or the range of counts that differ between tissues: "78" or "78–1,000"."""
    low, high = int(values.min()), int(values.max())
    return f"{low:,}" if low == high else f"{low:,}–{high:,}"


def _pattern_title(rows: pd.DataFrame, pattern: str) -> str:
    return PATTERN_TITLES[pattern].format(genes=_span(rows["genes"]), cells=_span(rows["cells"]))


def chunk_label(table: pd.DataFrame) -> str:
    """The chunk-size axis label, from the stores' orientation: "cells per chunk" (cell-major),
    "genes per chunk" (gene-major), or both (the panel titles say which is which)."""
    return " / ".join(sorted(set(table["orientation"]))) + " per chunk"


def drawn_geometry(rows: pd.DataFrame) -> str:
    """What a figure of :func:`reference_geometry` rows draws, for its title: e.g. "cell-major,
    unsharded, codec packed, over http; other geometries left out (Store geometry figures)"."""
    parts = []
    for column, say in (
        ("orientation", lambda v: f"{'cell' if v == 'cells' else 'gene'}-major"),
        ("shard", lambda v: "unsharded" if int(v) == 1 else f"{int(v)} chunks per shard"),
        ("codec", lambda v: f"codec {v}"),
        ("backend", lambda v: f"over {v}"),
    ):
        if column in rows and rows[column].nunique() == 1:
            parts.append(say(rows[column].iloc[0]))
    note = ", ".join(parts) or "every geometry"
    if rows.attrs.get("left_out"):
        note += "; other geometries left out (Store geometry figures)"
    return note


def _plain_log(axis) -> None:
    """Log ticks at 1, 2 and 5 per decade, written as plain numbers ("20", not "2 x 10^1")."""
    axis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1, 2, 5)))
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.10g}"))
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _lines(
    ax,
    table: pd.DataFrame,
    column: str,
    ylabel: str,
    title: str,
    *,
    by: str | list[str] = "tissue",
    label=str,
    style=None,
    logy: bool = False,
) -> None:
    """One line per ``by`` group (named by ``label(key)``, drawn with ``style(key)``'s keyword
    arguments); with ``{column}_min``/``_max`` columns, error bars spanning them."""
    spread = {f"{column}_min", f"{column}_max"} <= set(table.columns)
    for key, rows in table.groupby(by, sort=True):
        rows = rows.sort_values("chunk")
        yerr = None
        if spread:
            low, high = rows[column] - rows[f"{column}_min"], rows[f"{column}_max"] - rows[column]
            yerr = [low.to_numpy(), high.to_numpy()]
        options = {"marker": "o", "capsize": 3} | (style(key) if style else {})
        ax.errorbar(rows["chunk"], rows[column], yerr=yerr, label=label(key), **options)
    ax.set_xscale("log")
    chunks = sorted(table["chunk"].unique())
    ax.set_xticks(chunks, [f"{c:,}" for c in chunks])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    highest = float(table[f"{column}_max" if spread else column].max())
    if logy:  # counts spanning decades: a factor of two still reads as one
        lowest = float(table[f"{column}_min" if spread else column].min())
        ax.set_yscale("log")
        _plain_log(ax.yaxis)
        ax.set_ylim(max(lowest, 1e-9) / 1.5, max(highest, 1e-9) * 1.5)
    else:
        ax.set_ylim(0, 1.1 * highest if highest > 0 else 1)  # from zero, up to what the data need
    ax.set_xlabel(chunk_label(table))
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)


def _panels(
    panels: list[list[tuple]],
    title: str,
    *,
    legend: str = "tissue",
    share_rows: bool = False,
    **line_options,
) -> plt.Figure:
    """A figure of :func:`_lines` panels: one column per list, one row per tuple in it.

    A tuple is ``_lines``' positional arguments, optionally followed by a dict of its keyword
    arguments for that panel; ``line_options`` apply to every panel. A callable instead of a
    tuple draws its panel itself (``spec(ax)``). With ``share_rows``, the panels of a row share
    their y range (to compare columns), and the legend goes below the panels instead of into
    the top right one.
    """
    n_rows = len(panels[0])
    width = max(3.2 * len(panels), 6)  # room for the title above a single column
    fig, axes = plt.subplots(
        n_rows, len(panels), figsize=(width, 3 * n_rows), dpi=110, squeeze=False
    )
    for col, column in enumerate(panels):
        for row, spec in enumerate(column):
            if callable(spec):
                spec(axes[row, col])
                continue
            extra = spec[4] if len(spec) > 4 else {}
            _lines(axes[row, col], *spec[:4], **line_options, **extra)
    fig.suptitle(title)
    if not share_rows:
        axes[0, -1].legend(title=legend, fontsize=8)
        fig.tight_layout()
        return fig
    for row in axes:
        limits = [ax.get_ylim() for ax in row]
        for ax in row:
            ax.set_ylim(min(low for low, _ in limits), max(high for _, high in limits))
    entries = {}  # a column may lack some lines: gather each label once from the whole row
    for ax in axes[0]:
        entries.update(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    labels, handles = list(entries), list(entries.values())
    # as many entries side by side as fit the figure's width (8 pt text: ~0.065 in a letter)
    entry_inches = 0.6 + 0.065 * max(len(label) for label in labels)
    n_cols = max(1, min(len(labels), int(fig.get_figwidth() // entry_inches)))
    below = 0.35 * (1 + math.ceil(len(labels) / n_cols)) / fig.get_figheight()  # rows + title
    fig.legend(handles, labels, title=legend, loc="lower center", ncol=n_cols, fontsize=8)
    fig.tight_layout(rect=(0, below, 1, 1))
    return fig


def _save(fig: plt.Figure, out: str | os.PathLike) -> None:
    fig.savefig(out)
    plt.close(fig)


def plot_message(message: str, out: str | os.PathLike) -> None:
    """A figure that says, in its place, why there is nothing to draw."""
    fig, ax = plt.subplots(figsize=(7, 2))
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    ax.axis("off")
    _save(fig, out)


def shard_label(shard: int) -> str:
    return "unsharded" if shard == 1 else f"{shard:,} chunks/shard"


def _geometry_grid(rows: pd.DataFrame, column, title: str) -> plt.Figure:
    """A column of panels per orientation and codec (``column(its rows, heading)`` gives them),
    rows of panels sharing their y ranges; a line per shard setting (a colour each) and tissue
    (a marker and line style each; named only when there are several)."""
    shards = sorted(rows["shard"].unique())
    tissues = sorted(rows["tissue"].unique())
    dashes = ["-", "--", ":", "-."]

    def style(key: tuple) -> dict:
        shard, tissue = key
        at = tissues.index(tissue)
        return {
            "color": f"C{shards.index(shard) % 10}",
            "marker": MARKERS[at % len(MARKERS)],
            "linestyle": dashes[at % len(dashes)],
        }

    def label(key: tuple) -> str:
        shard, tissue = key
        return shard_label(shard) if len(tissues) == 1 else f"{tissue}, {shard_label(shard)}"

    panels = [
        column(by_codec, f"{orientation[:-1]}-major, {codec}")
        for (orientation, codec), by_codec in rows.groupby(["orientation", "codec"], sort=True)
    ]
    return _panels(
        panels,
        title,
        legend="shard" if len(tissues) == 1 else "tissue, shard",
        share_rows=True,
        by=["shard", "tissue"],
        label=label,
        style=style,
    )
