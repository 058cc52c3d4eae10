"""The PCA figure: PC1 against PC2, the commonest cell types in colour, the rest in grey."""

from __future__ import annotations

import os

import anndata as ad
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from chunkatlas._schema import default
from chunkatlas.errors import ChunkatlasError  # noqa: E402

OTHER = "other"


def top_labels(labels: pd.Series, top: int = 10) -> pd.Series:
    """Keep the ``top`` commonest labels, replace the rest by "other" (ties broken by name)."""
    counts = labels.astype(str).value_counts()
    order = sorted(counts.index, key=lambda name: (-counts[name], name))
    kept = set(order[:top])
    return labels.astype(str).where(labels.astype(str).isin(kept), OTHER)


def plot_pca(
    result: ad.AnnData,
    out: str | os.PathLike,
    *,
    label_key: str = default("analysis.label_key"),
    top: int = 10,
    title: str = "",
) -> None:
    """Scatter PC1 vs PC2 of ``result.obsm['X_pca']`` coloured by the top ``top`` labels; when
    the analysis selected its genes per batch (``uns['chunkatlas']['batch_key']``), a second
    panel coloured by batch shows whether the PCs follow the batches."""
    batch_key = result.uns.get("chunkatlas", {}).get("batch_key")
    keys = [label_key] + ([batch_key] if batch_key and batch_key != label_key else [])
    for key in keys:
        if key not in result.obs:
            allowed = ", ".join(map(str, result.obs.columns)) or "none"
            raise ChunkatlasError(f"obs has no column {key!r} to colour by; has: {allowed}")
    pcs = np.asarray(result.obsm["X_pca"])[:, :2]
    variance = result.uns.get("pca", {}).get("variance_ratio")
    fig, axes = plt.subplots(1, len(keys), figsize=(7.5 * len(keys), 5.5), dpi=120, squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        scatter_by(ax, pcs, top_labels(result.obs[key], top), key, variance)
        ax.set_title(f"coloured by {key.replace('_', ' ')}" if len(keys) > 1 else "")
    fig.suptitle(title or f"PCA of {result.n_obs:,} cells")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def draw_order(labels: pd.Series, seed: int = 0) -> np.ndarray:
    """The order to draw cells in so that no group hides another: each cell's key is a random
    fraction of its group's size, largest keys first.  A small group is drawn after nearly all
    of a large one (on top of it), and groups of like size are interleaved, so two that share a
    place both show (drawing group by group, the last drawn would cover the other whole)."""
    sizes = labels.map(labels.value_counts()).to_numpy(dtype=float)
    keys = np.random.default_rng(seed).random(len(labels)) * sizes
    return np.argsort(-keys, kind="stable")


def scatter_by(ax, pcs: np.ndarray, labels: pd.Series, key: str, variance) -> None:
    """PC1 against PC2 on ``ax``, a colour per label (the rest grey, beneath), a legend."""
    counts = labels.value_counts()
    named = sorted((n for n in counts.index if n != OTHER), key=lambda n: (-counts[n], n))
    palette = plt.get_cmap("tab10")
    colour_of = {name: palette(i % 10) for i, name in enumerate(named)}
    size = max(1.0, min(12.0, 20_000 / max(len(labels), 1)))
    grey = (labels == OTHER).to_numpy()
    if grey.any():
        ax.scatter(*pcs[grey].T, s=size, c="lightgrey", lw=0)
    coloured = labels[~grey]
    order = draw_order(coloured)
    colours = np.array([colour_of[name] for name in coloured.to_numpy()[order]]).reshape(-1, 4)
    ax.scatter(*pcs[~grey][order].T, s=size, c=colours, lw=0)
    handles = [
        Line2D([], [], ls="", marker="o", color=colour_of[name], label=f"{name} ({counts[name]})")
        for name in named
    ]
    if grey.any():
        handles.append(
            Line2D([], [], ls="", marker="o", color="lightgrey", label=f"{OTHER} ({grey.sum()})")
        )
    for axis, label in ((0, ax.set_xlabel), (1, ax.set_ylabel)):
        share = f" ({100 * variance[axis]:.1f}%)" if variance is not None else ""
        label(f"PC{axis + 1}{share}")
    ax.legend(
        handles=handles,
        title=key.replace("_", " "),
        loc="center left",
        bbox_to_anchor=(1.01, 0.5),
        fontsize=8,
        frameon=False,
    )
