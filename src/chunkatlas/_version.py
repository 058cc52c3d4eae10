"""The installed version of chunkatlas (bottom layer: the store records it in manifests)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("chunkatlas")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
