"""Figures of the chunk-size study: one line per tissue against chunk size."""

from __future__ import annotations

import os

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from chunkatlas.summary import STEPS  # noqa: E402


def _lines(ax, table: pd.DataFrame, column: str, ylabel: str, title: str) -> None:
    for tissue, rows in table.groupby("tissue", sort=True):
        rows = rows.sort_values("chunk")
        ax.plot(rows["chunk"], rows[column], marker="o", label=str(tissue))
    ax.set_xscale("log")
    chunks = sorted(table["chunk"].unique())
    ax.set_xticks(chunks, [f"{c:,}" for c in chunks])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_ylim(bottom=0, top=max(1.0, float(table[column].max()) * 1.1))
    ax.set_xlabel("chunk size")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)


def _save_panels(panels: list[tuple[tuple, tuple]], title: str, out: str | os.PathLike) -> None:
    """A figure of two rows of :func:`_lines` panels, one column per (top, bottom) pair."""
    fig, axes = plt.subplots(2, len(panels), figsize=(3.2 * len(panels), 6), dpi=110, squeeze=False)
    for col, (top, bottom) in enumerate(panels):
        _lines(axes[0, col], *top)
        _lines(axes[1, col], *bottom)
    axes[0, -1].legend(title="tissue", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def plot_remote(remote: pd.DataFrame, out: str | os.PathLike) -> None:
    """Requests and bytes per access pattern (columns) against chunk size; with no
    measurements (remote accounting off), a figure that says so in their place."""
    if remote.empty:
        fig, ax = plt.subplots(figsize=(5, 2))
        ax.text(0.5, 0.5, "remote accounting disabled (remote.enabled: false)", ha="center")
        ax.axis("off")
        fig.savefig(out)
        plt.close(fig)
        return
    patterns = [
        p
        for p in ("one_gene", "fifty_genes", "cell_block", "all_x", "open")
        if p in set(remote["pattern"])
    ]
    panels = []
    for pattern in patterns:
        rows = remote[remote["pattern"] == pattern]
        panels.append(
            (
                (rows, "requests", "HTTP requests", pattern.replace("_", " ")),
                (rows.assign(mb=rows["bytes"] / 1e6), "mb", "MB transferred", ""),
            )
        )
    _save_panels(panels, "Remote reads: what each chunk size costs per access pattern", out)


def plot_steps(summary: pd.DataFrame, out: str | os.PathLike) -> None:
    """Seconds and peak memory of each workflow step against chunk size."""
    steps = [s for s in STEPS if f"{s}_seconds" in summary]
    panels = [
        (
            (summary, f"{step}_seconds", "seconds", step),
            (summary, f"{step}_max_rss_mb", "peak memory (MB)", ""),
        )
        for step in steps
    ]
    _save_panels(panels, "Workflow steps: time and peak memory per chunk size", out)


def plot_store_size(summary: pd.DataFrame, out: str | os.PathLike) -> None:
    fig, ax = plt.subplots(figsize=(5, 4), dpi=110)
    _lines(
        ax, summary.assign(mb=summary["store_bytes"] / 1e6), "mb", "stored MB", "Store size on disk"
    )
    ax.legend(title="tissue", fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
