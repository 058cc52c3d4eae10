"""Highly-variable genes from per-gene moments, with scanpy's formulas, binning and NaN handling
(flavors seurat, cell_ranger, seurat_v3 and seurat_v3_paper), in one batch or per batch.

With batches, scanpy selects genes in each batch apart and merges the selections: seurat and
cell_ranger by the number of batches a gene is highly variable in, ties broken by the mean
normalised dispersion; seurat_v3 by the median rank, seurat_v3_paper by the number of batches.
Every function here takes the batches' moments as (batches x genes) arrays, already summed."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np

from chunkatlas.errors import ChunkatlasError

if TYPE_CHECKING:  # the workers never import pandas or scipy.sparse: they start faster
    import pandas as pd


#: scanpy's number of mean-expression bins for flavor seurat.
N_BINS = 20
#: scanpy's loess span for seurat_v3.
SPAN = 0.3


def mean_var(sums: np.ndarray, squares: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """scanpy's per-gene mean and unbiased variance from sums and sums of squares."""
    mean = sums / n
    var = squares / n - mean**2
    if n != 1:
        var *= n / (n - 1)
    return mean, var


def batch_mean_var(
    sums: np.ndarray, squares: np.ndarray, sizes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each batch's gene means and variances (batches x genes), as scanpy takes them in a
    batch's own cells."""
    pairs = [mean_var(s, q, int(n)) for s, q, n in zip(sums, squares, sizes, strict=True)]
    return np.array([m for m, _ in pairs]), np.array([v for _, v in pairs])


def median_absolute_deviation(values: pd.Series) -> float:
    """statsmodels' MAD (normalised to the standard deviation), as scanpy's cell_ranger uses."""
    a = np.asarray(values, dtype=np.float64)
    if not a.size:
        return np.nan
    return float(np.median(np.abs(a - np.median(a)) / normal_quartile()))


@functools.cache
def normal_quartile() -> float:
    """The standard normal's 0.75 quantile, by which MAD is normalised (computed once: a
    batch-aware selection takes hundreds of MADs per bin)."""
    from scipy.stats import norm

    return norm.ppf(0.75)


def mean_bins(means: pd.Series, flavor: str) -> pd.Series:
    """scanpy's mean-expression bins: 20 equal-width (seurat) or 5 % quantiles (cell_ranger)."""
    import pandas as pd

    if flavor == "seurat":
        bins = N_BINS
    else:
        bins = np.r_[-np.inf, np.percentile(means, np.arange(10, 105, 5)), np.inf]
    with bins_explained(flavor):
        return pd.cut(means, bins=bins)


@contextmanager
def bins_explained(flavor: str) -> Iterator[None]:
    """pandas' "Bin edges must be unique" said in one line: cell_ranger bins genes by mean
    deciles, which unexpressed genes collapse (scanpy's own and this engine's binning alike)."""
    try:
        yield
    except ValueError as err:
        if "Bin edges must be unique" not in str(err):
            raise
        raise ChunkatlasError(
            f"HVG flavor {flavor!r} failed: too many genes without counts to form its "
            "mean-expression bins; use flavor 'seurat'"
        ) from None


def top_genes(dispersion_norm: np.ndarray, n_top_genes: int) -> np.ndarray:
    """scanpy's top-n selection: every gene at or above the n-th highest normalised dispersion."""
    finite = dispersion_norm[~np.isnan(dispersion_norm)]
    if not finite.size:
        raise ChunkatlasError("no gene has a normalised dispersion: X holds no variation")
    n = min(n_top_genes, finite.size)
    finite[::-1].sort()
    return np.nan_to_num(dispersion_norm, nan=-np.inf) >= finite[n - 1]


def dispersion_table(
    mean: np.ndarray, var: np.ndarray, flavor: str, n_top_genes: int
) -> pd.DataFrame:
    """HVG columns of flavor seurat or cell_ranger from the moments of the log1p'd data
    (seurat: of its expm1), as scanpy computes them."""
    import pandas as pd

    mean = mean.copy()
    mean[mean == 0] = 1e-12
    with np.errstate(divide="ignore", invalid="ignore"):
        dispersion = var / mean
        if flavor == "seurat":
            dispersion[dispersion == 0] = np.nan
            dispersion = np.log(dispersion)
            mean = np.log1p(mean)
    df = pd.DataFrame({"means": mean, "dispersions": dispersion})
    df["mean_bin"] = mean_bins(df["means"], flavor)
    grouped = df.groupby("mean_bin", observed=True)["dispersions"]
    if flavor == "seurat":
        stats = grouped.agg(avg="mean", dev="std")
        single = stats["dev"].isnull()  # one gene in its bin: normalised dispersion 1
        stats.loc[single, "dev"] = stats.loc[single, "avg"]
        stats.loc[single, "avg"] = 0
    else:
        stats = grouped.agg(avg="median", dev=median_absolute_deviation)
    stats = stats.loc[df["mean_bin"]].set_index(df.index)
    df["dispersions_norm"] = (df["dispersions"] - stats["avg"]) / stats["dev"]
    highly_variable = top_genes(df["dispersions_norm"].to_numpy(), n_top_genes)
    return pd.DataFrame(
        {
            "highly_variable": highly_variable,
            "means": df["means"].to_numpy(),
            "dispersions": df["dispersions"].to_numpy(),
            "dispersions_norm": df["dispersions_norm"].to_numpy(),
        }
    )


def dispersion_columns(
    mean: np.ndarray, var: np.ndarray, flavor: str, n_top_genes: int
) -> pd.DataFrame:
    """scanpy's var columns of flavor seurat or cell_ranger without batches (one row of
    moments)."""
    table = dispersion_table(mean[0], var[0], flavor, n_top_genes)
    table["dispersions_norm"] = table["dispersions_norm"].astype(np.float32)
    return table


def batched_dispersion_columns(
    mean: np.ndarray,
    var: np.ndarray,
    expressed: np.ndarray,
    flavor: str,
    n_top_genes: int,
    name_order: np.ndarray,
) -> pd.DataFrame:
    """scanpy's var columns of flavor seurat or cell_ranger with batches, from each batch's
    moments and which genes it expresses (batches x genes; batches in scanpy's order, the
    categories').

    As scanpy, each batch selects among the genes it expresses (a gene it does not express
    counts 0 in every column); the batches' columns are averaged (pandas' compensated mean,
    skipping NaN), and genes ranked by the number of batches that select them, then by mean
    normalised dispersion, ties in order of gene name (``name_order``: the genes sorted by name,
    as scanpy's groupby leaves them).
    """
    import pandas as pd

    n_batches, n_genes = mean.shape
    columns = ("means", "dispersions", "dispersions_norm")
    per_batch = {name: np.zeros((n_batches, n_genes)) for name in columns}
    selected = np.zeros((n_batches, n_genes), dtype=np.int64)
    for b in range(n_batches):
        keep = expressed[b]
        if not keep.any():
            continue  # a batch without counts: zeros, as scanpy's filtered genes
        table = dispersion_table(mean[b, keep], var[b, keep], flavor, n_top_genes)
        for name in columns:
            per_batch[name][b, keep] = table[name].to_numpy()
        selected[b, keep] = table["highly_variable"].to_numpy()
    merged = pd.DataFrame({name: compensated_mean(rows) for name, rows in per_batch.items()})
    merged["highly_variable_nbatches"] = selected.sum(axis=0)
    merged["highly_variable_intersection"] = merged["highly_variable_nbatches"] == n_batches
    ordered = merged.iloc[name_order]
    ranked = ordered.sort_values(
        ["highly_variable_nbatches", "dispersions_norm"], ascending=False, na_position="last"
    )
    highly_variable = np.zeros(n_genes, dtype=bool)
    highly_variable[ranked.index[:n_top_genes]] = True
    return pd.DataFrame(
        {
            "highly_variable": highly_variable,
            "means": merged["means"].to_numpy(),
            "dispersions": merged["dispersions"].to_numpy(),
            "dispersions_norm": merged["dispersions_norm"].to_numpy().astype(np.float32),
            "highly_variable_nbatches": merged["highly_variable_nbatches"].to_numpy(),
            "highly_variable_intersection": merged["highly_variable_intersection"].to_numpy(),
        }
    )


def compensated_mean(rows: np.ndarray) -> np.ndarray:
    """The mean of each column over the rows, skipping NaN (NaN where all are), with pandas'
    groupby arithmetic: a Kahan-compensated sum in row order, its compensation reset where an
    infinity makes it NaN, divided by the count."""
    total = np.zeros(rows.shape[1])
    compensation = np.zeros(rows.shape[1])
    count = np.zeros(rows.shape[1], dtype=np.int64)
    with np.errstate(invalid="ignore"):
        for row in rows:
            present = ~np.isnan(row)
            y = np.where(present, row - compensation, 0.0)
            t = total + y
            new_compensation = t - total - y
            new_compensation[np.isnan(new_compensation)] = 0.0
            compensation = np.where(present, new_compensation, compensation)
            total = np.where(present, t, total)
            count += present
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def welford_mean_var(
    n_nz: np.ndarray, mean: np.ndarray, m2: np.ndarray, n_obs: int
) -> tuple[np.ndarray, np.ndarray]:
    """One batch's gene means and variances (dof 1) from Welford's running state over its
    stored values, merged with its implicit zeros: scanpy's aggregate, operation by operation."""
    k = n_obs - n_nz
    merge = (k > 0) & (n_nz > 0)
    merged_mean = np.where(merge, mean * n_nz / n_obs, mean)
    var = np.where(merge, m2 + mean * mean * n_nz * k / n_obs, m2) / n_obs
    var *= n_obs / (n_obs - 1)
    return merged_mean, var


def seurat_v3_clip(
    mean: np.ndarray, var: np.ndarray, n_obs: int, *, where: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """The regularised standard deviation (loess of log variance on log mean, scikit-misc) and
    the clip value of every gene, as scanpy's seurat_v3 (one batch of ``n_obs`` cells)."""
    try:
        from skmisc.loess import loess
    except ImportError as err:
        raise ChunkatlasError(
            "HVG flavor 'seurat_v3' needs scikit-misc: pip install scikit-misc"
        ) from err
    not_const = var > 0
    if not_const.sum() < 3:
        raise ChunkatlasError(
            f"HVG flavor 'seurat_v3' needs at least 3 genes with varying counts{where}"
        )
    estimated = np.zeros(len(mean), dtype=np.float64)
    model = loess(np.log10(mean[not_const]), np.log10(var[not_const]), span=SPAN, degree=2)
    try:
        model.fit()
    except ValueError as err:  # scanpy stops on the same fit, with scikit-misc's bare message
        reason = err.args[0].decode() if isinstance(err.args[0], bytes) else str(err)
        raise ChunkatlasError(
            f"HVG flavor 'seurat_v3': the loess fit of variance on mean failed{where} "
            f"({reason}): {n_obs} cells, {int(not_const.sum())} genes with varying counts are "
            "too few for it; use larger batches or flavor 'seurat'"
        ) from None
    estimated[not_const] = model.outputs.fitted_values
    reg_std = np.sqrt(10**estimated)
    return reg_std, reg_std * np.sqrt(n_obs) + mean


def normalised_variance(
    mean: np.ndarray,
    reg_std: np.ndarray,
    clipped_sums: np.ndarray,
    clipped_squares: np.ndarray,
    n_obs: int,
) -> np.ndarray:
    """seurat_v3's variance of the standardised, clipped counts of one batch, as scanpy's."""
    return (1 / ((n_obs - 1) * np.square(reg_std))) * (
        (n_obs * np.square(mean)) + clipped_squares - 2 * clipped_sums * mean
    )


def seurat_v3_columns(
    mean: np.ndarray,
    var: np.ndarray,
    norm_vars: np.ndarray,
    flavor: str,
    n_top_genes: int,
    *,
    batched: bool,
) -> pd.DataFrame:
    """scanpy's var columns of flavor seurat_v3 or seurat_v3_paper from the moments of all
    cells (``mean``, ``var``) and each batch's normalised variances (batches x genes, batches
    in sorted order, as scanpy's ``np.unique``).

    Each batch ranks its genes; a gene's rank is its median rank over the batches that rank it
    among their top ``n_top_genes``.  seurat_v3 selects by that rank, then by the number of
    batches; seurat_v3_paper by the number of batches, then by the rank (ties in gene order).
    """
    import pandas as pd

    ranked = np.argsort(np.argsort(-norm_vars, axis=1), axis=1).astype(np.float32)
    nbatches = np.sum((ranked < n_top_genes).astype(int), axis=0)
    ranked[ranked >= n_top_genes] = np.nan
    rank = np.ma.median(np.ma.masked_invalid(ranked), axis=0).filled(np.nan)
    order = pd.DataFrame({"highly_variable_rank": rank, "highly_variable_nbatches": nbatches})
    keys = ["highly_variable_rank", "highly_variable_nbatches"]
    ascending = [True, False]
    if flavor == "seurat_v3_paper":
        keys, ascending = keys[::-1], ascending[::-1]
    ranked_genes = order.sort_values(keys, ascending=ascending, na_position="last").index
    highly_variable = np.zeros(len(mean), dtype=bool)
    highly_variable[ranked_genes[:n_top_genes]] = True
    columns = {
        "highly_variable": highly_variable,
        "highly_variable_rank": rank,
        "means": mean,
        "variances": var,
        "variances_norm": np.mean(norm_vars, axis=0).astype(np.float64),
    }
    if batched:
        columns["highly_variable_nbatches"] = nbatches
    return pd.DataFrame(columns)
