"""The store-geometry study: loopback servers behind an emulated network (:mod:`._network`;
HTTP in :mod:`._http`, S3 in :mod:`._s3`, both run by :mod:`._server_process` and chosen by
backend in :mod:`._serving`), the cells and genes each access pattern reads and the ranges of
X's arrays they cover (:mod:`._reads`), and the measurement of each pattern's requests, bytes
and seconds (:mod:`._measure`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chunkatlas._exports import lazy_exports

if TYPE_CHECKING:  # the public names, each imported on first use
    from chunkatlas.study._http import nginx_serving
    from chunkatlas.study._measure import CONDITIONS
    from chunkatlas.study._measure import measure_backends
    from chunkatlas.study._measure import measure_stores_backends
    from chunkatlas.study._measure import Measurement
    from chunkatlas.study._reads import CELL_BLOCK
    from chunkatlas.study._reads import cell_block_size
    from chunkatlas.study._reads import PANEL
    from chunkatlas.study._reads import parse_ranges
    from chunkatlas.study._reads import pattern_selection
    from chunkatlas.study._reads import PATTERNS
    from chunkatlas.study._reads import SELECTION_SEED
    from chunkatlas.study._reads import Selection
    from chunkatlas.study._request_log import peak_in_flight
    from chunkatlas.study._network import Network
    from chunkatlas.study._network import OBJECT_STORE
    from chunkatlas.study._serving import served_store

__all__, __getattr__, __dir__ = lazy_exports(__name__, __file__)
