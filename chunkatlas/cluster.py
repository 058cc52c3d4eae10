"""The Dask distributed cluster that analysis runs on."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import dask
from distributed import Client, LocalCluster

from chunkatlas.errors import ChunkatlasError

log = logging.getLogger(__name__)


def worker_settings(large_graph_warning_threshold: str = "10MB") -> dict[str, object]:
    """Dask settings for out-of-core analysis, as the TileDB-SOMA Dask tutorial recommends.

    Spilling, pausing and terminating are off: tasks are sized to fit, and a paused or killed
    worker only turns a memory problem into a hang or a retry storm.
    """
    return {
        "distributed.worker.memory.target": False,
        "distributed.worker.memory.spill": False,
        "distributed.worker.memory.pause": False,
        "distributed.worker.memory.terminate": False,
        "distributed.admin.large-graph-warning-threshold": large_graph_warning_threshold,
        "logging.distributed": "warning",
    }


@contextmanager
def dask_client(
    n_workers: int,
    memory_mb: int,
    *,
    scheduler_address: str | None = None,
    connect_timeout: float = 30.0,
    large_graph_warning_threshold: str = "10MB",
) -> Iterator[Client]:
    """A Client on a new LocalCluster (one thread per worker), or on ``scheduler_address``.

    The LocalCluster gets ``n_workers`` processes sharing ``memory_mb``; its dashboard listens on
    a free port, so concurrent jobs never collide.
    """
    if n_workers < 1:
        raise ChunkatlasError(f"workers must be a positive integer, got {n_workers}")
    # distributed sets its loggers to INFO on import; keep the rule's log to what matters.
    logging.getLogger("distributed").setLevel(logging.WARNING)
    with dask.config.set(worker_settings(large_graph_warning_threshold)):
        if scheduler_address:
            try:
                client = Client(scheduler_address, timeout=connect_timeout)
            except OSError as err:
                raise ChunkatlasError(
                    f"Dask scheduler {scheduler_address} did not answer within "
                    f"{connect_timeout:g} s"
                ) from err
            with client:
                log.info("connected to Dask scheduler %s; dashboard: %s", scheduler_address,
                         client.dashboard_link)
                yield client
            return
        per_worker_mb = max(256, memory_mb // n_workers)
        with LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            memory_limit=f"{per_worker_mb}MB",
            dashboard_address=":0",
        ) as cluster, Client(cluster) as client:
            log.info("Dask LocalCluster: %d workers x 1 thread, %d MB each; dashboard: %s",
                     n_workers, per_worker_mb, client.dashboard_link)
            yield client
