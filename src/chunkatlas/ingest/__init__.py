"""Getting data in: the one streamed read of a source (a TileDB-SOMA Experiment such as the
CELLxGENE Census, or any AnnData store) into a fetched store (:mod:`._fetch`), each cell's
``raw_sum`` and ``nnz`` counted as X streams by (:mod:`._cell_totals`), and the embedded demo
atlas (:mod:`.demo`); and what a source holds, read from its metadata before any job, its
config checked against it (:mod:`._facts`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chunkatlas._exports import lazy_exports

if TYPE_CHECKING:  # the public names, each imported on first use
    from chunkatlas.ingest._cell_totals import TOTAL_COLUMNS
    from chunkatlas.ingest._cell_totals import write_with_totals
    from chunkatlas.ingest._facts import SourceFacts
    from chunkatlas.ingest._facts import SourceUnreachable
    from chunkatlas.ingest._facts import inspect_source
    from chunkatlas.ingest._fetch import build_obs_filter
    from chunkatlas.ingest._fetch import DEFAULT_OBS_FILTER
    from chunkatlas.ingest._fetch import fetch
    from chunkatlas.ingest._fetch import fetch_tissue
    from chunkatlas.ingest._fetch import SourceSettings

__all__, __getattr__, __dir__ = lazy_exports(__name__, __file__)
