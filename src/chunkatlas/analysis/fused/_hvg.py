"""Highly-variable genes from per-gene moments, with scanpy's formulas, binning and NaN handling
(flavors seurat, cell_ranger and seurat_v3)."""

from __future__ import annotations

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


def median_absolute_deviation(values: pd.Series) -> float:
    """statsmodels' MAD (normalised to the standard deviation), as scanpy's cell_ranger uses."""
    from scipy.stats import norm

    a = np.asarray(values, dtype=np.float64)
    if not a.size:
        return np.nan
    return float(np.median(np.abs(a - np.median(a)) / norm.ppf(0.75)))


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
            "dispersions_norm": df["dispersions_norm"].to_numpy().astype(np.float32),
        }
    )


def seurat_v3_clip(mean: np.ndarray, var: np.ndarray, n_obs: int) -> tuple[np.ndarray, np.ndarray]:
    """The regularised standard deviation (loess of log variance on log mean, scikit-misc) and
    the clip value of every gene, as scanpy's seurat_v3."""
    try:
        from skmisc.loess import loess
    except ImportError as err:
        raise ChunkatlasError(
            "HVG flavor 'seurat_v3' needs scikit-misc: pip install scikit-misc"
        ) from err
    not_const = var > 0
    if not_const.sum() < 3:
        raise ChunkatlasError("HVG flavor 'seurat_v3' needs at least 3 genes with varying counts")
    estimated = np.zeros(len(mean), dtype=np.float64)
    model = loess(np.log10(mean[not_const]), np.log10(var[not_const]), span=SPAN, degree=2)
    model.fit()
    estimated[not_const] = model.outputs.fitted_values
    reg_std = np.sqrt(10**estimated)
    return reg_std, reg_std * np.sqrt(n_obs) + mean


def seurat_v3_table(
    mean: np.ndarray,
    var: np.ndarray,
    reg_std: np.ndarray,
    clipped_sums: np.ndarray,
    clipped_squares: np.ndarray,
    n_obs: int,
    n_top_genes: int,
) -> pd.DataFrame:
    """HVG columns of flavor seurat_v3 (one batch), as scanpy computes them."""
    import pandas as pd

    norm_var = (1 / ((n_obs - 1) * np.square(reg_std))) * (
        (n_obs * np.square(mean)) + clipped_squares - 2 * clipped_sums * mean
    )
    norm_vars = norm_var.reshape(1, -1)
    ranked = np.argsort(np.argsort(-norm_vars, axis=1), axis=1).astype(np.float32)
    ranked[ranked >= n_top_genes] = np.nan
    rank = np.ma.median(np.ma.masked_invalid(ranked), axis=0).filled(np.nan)
    return pd.DataFrame(
        {
            "highly_variable": ~np.isnan(rank),
            "highly_variable_rank": rank,
            "means": mean,
            "variances": var,
            "variances_norm": np.mean(norm_vars, axis=0).astype(np.float64),
        }
    )
