"""chunkatlas: chunk-tuned zarr stores and out-of-core HVG/PCA for atlas-scale single-cell data."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("chunkatlas")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

from chunkatlas.errors import ChunkatlasError
from chunkatlas.result import open_result

__all__ = ["ChunkatlasError", "__version__", "open_result"]
