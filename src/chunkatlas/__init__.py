"""chunkatlas: chunk-tuned zarr stores and out-of-core HVG/PCA for atlas-scale single-cell data."""

from chunkatlas._version import __version__
from chunkatlas.errors import ChunkatlasError
from chunkatlas.result import open_result

__all__ = ["ChunkatlasError", "__version__", "open_result"]
