"""PCA from the Gram matrix of the HVGs: the covariance's top eigenpairs, signed as sklearn signs
them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def top_eigenpairs(matrix: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest eigenvalues (descending) and eigenvectors of a symmetric matrix.

    Large matrices go through ARPACK's Lanczos iteration to machine precision (a fraction of the
    time of a full tridiagonalisation), from a fixed start vector; small ones, or no
    convergence, through LAPACK.
    """
    import scipy.linalg
    from scipy.sparse.linalg import ArpackNoConvergence, eigsh

    width = matrix.shape[0]
    if width > 500 and 3 * k < width:
        start = np.random.default_rng(0).uniform(-1, 1, width)
        try:
            values, vectors = eigsh(matrix, k=k, which="LA", tol=0, v0=start)
        except ArpackNoConvergence:
            pass
        else:
            order = np.argsort(values)[::-1]
            return values[order], vectors[:, order]
    values, vectors = scipy.linalg.eigh(matrix, subset_by_index=[width - k, width - 1])
    return values[::-1].copy(), vectors[:, ::-1].copy()


@dataclass(frozen=True)
class PcaFit:
    """Principal components of the HVGs: components (n_comps x n_hvg), their variances."""

    components: np.ndarray
    variance: np.ndarray
    variance_ratio: np.ndarray
    mean: np.ndarray


def pca_from_gram(gram: np.ndarray, sums: np.ndarray, n_obs: int, n_comps: int) -> PcaFit:
    """PCA from X^T X and column sums: eigenvectors of the covariance (ddof=1), largest first,
    each signed so its largest-magnitude loading is positive (sklearn's svd_flip on V).

    ``gram`` is overwritten with the covariance."""
    mean = sums / n_obs
    cov = gram  # in place, row block by row block: the Gram matrix is not needed afterwards
    for lo in range(0, len(mean), 256):
        cov[lo : lo + 256] -= n_obs * np.outer(mean[lo : lo + 256], mean)
    cov /= n_obs - 1
    variance, vectors = top_eigenpairs(cov, n_comps)
    components = vectors.T.copy()
    biggest = np.argmax(np.abs(components), axis=1)
    components *= np.sign(components[np.arange(n_comps), biggest])[:, None]
    return PcaFit(components, variance, variance / np.trace(cov), mean)
