"""``uns['chunkatlas']``: what an analysis records of itself, the same for both engines.

First its provenance (chunkatlas's version, the store and how it was read, the cluster, the
cells per task, the analysis parameters and what the caller adds), then what it cost: each step's
seconds and reads, what the driver itself read, and the workers' peak memory."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING

from chunkatlas._version import __version__
from chunkatlas.analysis._metering import StepMeter
from chunkatlas.store import StoreLocation, take_reads

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


def analysis_provenance(
    location: StoreLocation,
    cluster_kind: str,
    task_cells: int,
    params: DataclassInstance,
    extra: Mapping | None = None,
) -> dict:
    """What an analysis is: the store, the cluster (:attr:`ClusterSettings.kind`),
    ``task_cells`` cells per task, every field of ``params``
    (the AnalysisParams) and the caller's ``extra`` (which may override any of them)."""
    return {
        "version": __version__,
        "store": str(location),
        "read": location.read,
        "cluster": cluster_kind,
        "task_cells": task_cells,
        **asdict(params),
        **(extra or {}),
    }


def analysis_uns(costs: StepMeter, provenance: Mapping | None = None) -> dict:
    """``uns['chunkatlas']`` once the last step has run (and while the cluster still runs: the
    workers report their peak memory): the ``provenance``, each step's seconds and reads, and
    what the driver read since the analysis began."""
    return {
        **(provenance or {}),
        "seconds": costs.seconds,
        "passes": costs.passes,
        "driver_reads": take_reads()[1].asdict(),
        "workers_peak_rss_mb": costs.workers_peak_mb(),
    }
