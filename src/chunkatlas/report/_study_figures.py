"""Figures of the remote reads: what each chunk size costs per access pattern, what each store
geometry costs one pattern over one backend, and the cost model's predicted against measured
seconds."""

from __future__ import annotations

import os
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from chunkatlas.errors import ChunkatlasError  # noqa: E402
from chunkatlas.model import CostFit, predicted  # noqa: E402
from chunkatlas.report._figures import (  # noqa: E402
    MARKERS,
    PATTERN_TITLES,
    _geometry_grid,
    _panels,
    _pattern_title,
    _plain_log,
    _save,
    drawn_geometry,
    plot_message,
)
from chunkatlas.study import PATTERNS  # noqa: E402


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


def plot_remote(remote: pd.DataFrame, out: str | os.PathLike) -> None:
    """:func:`remote_figure`; with no measurements (remote accounting off), a figure that
    says so in its place."""
    if remote.empty:
        plot_message("remote accounting disabled (remote.enabled: false)", out)
    else:
        _save(remote_figure(remote), out)


def _values(rows: pd.DataFrame, column: str, unit: str) -> str:
    """The emulated network's setting, e.g. "20 ms", or "20/80 ms" when the rows differ."""
    values = sorted(rows[column].dropna().unique()) if column in rows.columns else []
    return "/".join(f"{v:g}" for v in values) + f" {unit}" if values else f"unrecorded {unit}"


def network_text(rows: pd.DataFrame) -> str:
    """The emulated network of the rows, from their latency_ms and bandwidth_mbps columns."""
    latency, bandwidth = _values(rows, "latency_ms", "ms"), _values(rows, "bandwidth_mbps", "Mbps")
    return f"emulated network: {latency} latency, {bandwidth}"


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
        "Cost model: seconds ≈ fixed + a × round trips + b × bytes per response in flight\n"
        "+ s × bytes selected in memory + c × (seconds to decode them locally)\n"
        f"({network_text(rows)})\n"
        + "\n".join(textwrap.fill(f.describe(), 95) for f in fit.backends.values()),
        fontsize=8,
    )
    fig.tight_layout()
    return fig


def plot_cost_fit(table: pd.DataFrame, fit: CostFit, out: str | os.PathLike) -> None:
    _save(cost_fit_figure(table, fit), out)
