"""Figures of the chunk-size study: lines against chunk size (one per tissue, or per shard
setting for store geometries), and the cost model's predicted against measured seconds."""

from __future__ import annotations

import math
import os

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from chunkatlas.errors import ChunkatlasError  # noqa: E402
from chunkatlas.report._cost_model import CostFit, predicted  # noqa: E402
from chunkatlas.report._tables import PER_TISSUE_STEPS, STEPS  # noqa: E402
from chunkatlas.study import PATTERNS

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


def remote_figure(remote: pd.DataFrame) -> plt.Figure:
    """Requests, MB and seconds (median of the cold reads, bars from the fastest to the
    slowest) per access pattern (columns) against chunk size."""
    panels = []
    for pattern in PATTERN_TITLES:
        rows = remote[remote["pattern"] == pattern]
        if rows.empty:
            continue
        title = _pattern_title(rows, pattern)
        panels.append(
            [
                (rows, "requests", "HTTP requests", title),
                (rows.assign(mb=rows["bytes"] / 1e6), "mb", "MB transferred", ""),
                (rows, "seconds", "seconds", ""),
            ]
        )
    return _panels(
        panels,
        "Remote reads: what each chunk size costs per access pattern\n" + drawn_geometry(remote),
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


def plot_message(message: str, out: str | os.PathLike) -> None:
    """A figure that says, in its place, why there is nothing to draw."""
    fig, ax = plt.subplots(figsize=(7, 2))
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    ax.axis("off")
    _save(fig, out)


def plot_remote(remote: pd.DataFrame, out: str | os.PathLike) -> None:
    """:func:`remote_figure`; with no measurements (remote accounting off), a figure that
    says so in its place."""
    if remote.empty:
        plot_message("remote accounting disabled (remote.enabled: false)", out)
    else:
        _save(remote_figure(remote), out)


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


def steps_figure(summary: pd.DataFrame) -> plt.Figure:
    """Seconds and peak memory of each workflow step: the steps of one job per store against
    chunk size, a line per tissue; those of one job per tissue (``PER_TISSUE_STEPS``: fetch,
    before any chunking, and remote, measuring all of a tissue's stores) as a bar per tissue
    in the first columns, since against chunk size they would be flat by construction."""
    panels = [
        [
            _tissue_bars(summary, f"{step}_seconds", "seconds", f"{step} (once per tissue)"),
            _tissue_bars(summary, f"{step}_max_rss_mb", "peak memory (MB)", ""),
        ]
        for step in PER_TISSUE_STEPS
        if f"{step}_seconds" in summary
    ]
    panels += [
        [
            (summary, f"{step}_seconds", "seconds", step),
            (summary, f"{step}_max_rss_mb", "peak memory (MB)", ""),
        ]
        for step in STEPS
        if step not in PER_TISSUE_STEPS and f"{step}_seconds" in summary
    ]
    per = (
        "per tissue and per chunk size" if any(callable(c[0]) for c in panels) else "per chunk size"
    )
    title = f"Workflow steps: time and peak memory, {per}"
    return _panels(panels, f"{title}\n{drawn_geometry(summary)}")


def plot_steps(summary: pd.DataFrame, out: str | os.PathLike) -> None:
    _save(steps_figure(summary), out)


def store_size_figure(summary: pd.DataFrame) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(5, 4), dpi=110)
    title = f"Store size on disk\n{drawn_geometry(summary)}".replace("; ", ";\n")
    _lines(ax, summary.assign(mb=summary["store_bytes"] / 1e6), "mb", "stored MB", title)
    ax.legend(title="tissue", fontsize=8)
    fig.tight_layout()
    return fig


def plot_store_size(summary: pd.DataFrame, out: str | os.PathLike) -> None:
    _save(store_size_figure(summary), out)


def _values(rows: pd.DataFrame, column: str, unit: str) -> str:
    """The emulated network's setting, e.g. "20 ms", or "20/80 ms" when the rows differ."""
    values = sorted(rows[column].dropna().unique()) if column in rows.columns else []
    return "/".join(f"{v:g}" for v in values) + f" {unit}" if values else f"unrecorded {unit}"


def network_text(rows: pd.DataFrame) -> str:
    """The emulated network of the rows, from their latency_ms and bandwidth_mbps columns."""
    latency, bandwidth = _values(rows, "latency_ms", "ms"), _values(rows, "bandwidth_mbps", "Mbps")
    return f"emulated network: {latency} latency, {bandwidth}"


def shard_label(shard: int) -> str:
    return "unsharded" if shard == 1 else f"{shard:,} chunks/shard"


def geometry_figure(table: pd.DataFrame, backend: str, pattern: str) -> plt.Figure:
    """What each store geometry costs one access pattern over one backend: one figure per
    backend and pattern, since the patterns' requests and bytes differ by orders of magnitude
    and often coincide (drawn together, their lines would hide each other).

    Rows: requests, MB, seconds (median of the cold reads, bars from the fastest to the
    slowest) and objects (files in the store); columns: one per orientation and codec, sharing
    y ranges so layouts compare across; x: chunk size (log; cells per chunk of a cell-major
    store, genes of a gene-major one); a colour per shard setting and, with several tissues, a
    line style per tissue.
    """
    rows = table[(table["backend"] == backend) & (table["pattern"] == pattern)]
    if rows.empty:
        raise ChunkatlasError(f"no {pattern} reads over {backend} in the remote table")
    rows = rows.assign(mb=rows["bytes"] / 1e6)

    def column(by_codec: pd.DataFrame, heading: str) -> list[tuple]:
        return [
            (by_codec, "requests", "requests", heading, {"logy": True}),
            (by_codec, "mb", "MB transferred", ""),
            (by_codec, "seconds", "seconds (median)", ""),
            (by_codec, "objects", "objects in the store", "", {"logy": True}),
        ]

    title = (
        f"{_pattern_title(rows, pattern)} over {backend}: what each geometry costs\n"
        f"({network_text(rows)})"
    )
    return _geometry_grid(rows, column, title)


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


def plot_geometry(table: pd.DataFrame, out: str | os.PathLike, backend: str, pattern: str) -> None:
    _save(geometry_figure(table, backend, pattern), out)


def _pattern_colour(pattern: str) -> str:
    return f"C{PATTERNS.index(pattern) if pattern in PATTERNS else len(PATTERNS)}"


def cost_fit_figure(table: pd.DataFrame, fit: CostFit) -> plt.Figure:
    """Predicted against measured seconds, log-log: a point per row, a colour per pattern and
    a marker per backend, the y = x line, and each backend's fitted costs in the title."""
    rows = predicted(table, fit)
    rows = rows[(rows["seconds"] > 0) & (rows["predicted_seconds"] > 0)]
    fig, ax = plt.subplots(figsize=(7.5, 6), dpi=110)
    backends = sorted(rows["backend"].unique())
    for (backend, pattern), group in rows.groupby(["backend", "pattern"]):
        colour = f"C{PATTERNS.index(pattern) if pattern in PATTERNS else len(PATTERNS)}"
        marker = "osD^v"[backends.index(backend) % 5]
        ax.scatter(
            group["seconds"],
            group["predicted_seconds"],
            s=18,
            alpha=0.7,
            color=colour,
            marker=marker,
        )
    ends = [rows[["seconds", "predicted_seconds"]].min().min(), rows["seconds"].max()]
    ends = [ends[0] / 1.5, max(ends[1], rows["predicted_seconds"].max()) * 1.5]
    ax.plot(ends, ends, color="grey", linewidth=1, label="predicted = measured")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(ends)
    ax.set_ylim(ends)
    ax.set_aspect("equal")
    for axis in (ax.xaxis, ax.yaxis):
        _plain_log(axis)
    ax.set_xlabel("measured seconds (median of cold reads)")
    ax.set_ylabel("predicted seconds")
    ax.grid(alpha=0.3, which="both")
    # Two keys beside the axes: colours name patterns, markers name backends.
    present = set(rows["pattern"])
    patterns = [p for p in (*PATTERNS, *sorted(present - set(PATTERNS))) if p in present]
    colour_key = [
        plt.Line2D([], [], color=_pattern_colour(p), marker="o", linestyle="", label=p)
        for p in patterns
    ]
    marker_key = [
        plt.Line2D([], [], color="black", marker=MARKERS[i % len(MARKERS)], linestyle="", label=b)
        for i, b in enumerate(backends)
    ]
    first = ax.legend(
        handles=colour_key, title="pattern", loc="upper left", bbox_to_anchor=(1.02, 1)
    )
    ax.add_artist(first)
    ax.legend(handles=marker_key, title="backend", loc="lower left", bbox_to_anchor=(1.02, 0))
    ax.set_title(
        "Cost model: seconds ≈ a × requests + b × bytes + c × (seconds to decode those bytes "
        f"locally)\n({network_text(rows)})\n"
        + "\n".join(f.describe() for f in fit.backends.values()),
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def plot_cost_fit(table: pd.DataFrame, fit: CostFit, out: str | os.PathLike) -> None:
    _save(cost_fit_figure(table, fit), out)
