"""Reading X from a store over HTTP or S3, and locally, to compare the two."""

from __future__ import annotations

import anndata as ad
import numpy as np

from chunkatlas.store import RemoteSettings, open_remote_group, read_dask_backed

#: Quick retries for loopback servers.
FAST = RemoteSettings(attempts=6, backoff_seconds=0.01, timeout_seconds=20)


def read_remote_x(url: str, settings=FAST) -> np.ndarray:
    group, _ = open_remote_group(url, settings)
    x = read_dask_backed(group, 200).X.compute()
    return x.toarray() if hasattr(x, "toarray") else np.asarray(x)


def local_x(store) -> np.ndarray:
    x = ad.read_zarr(store).X
    return x.toarray() if hasattr(x, "toarray") else np.asarray(x)
