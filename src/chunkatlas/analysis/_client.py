"""The Dask distributed cluster that analysis runs on.

Four ways, one result: a new LocalCluster (the default), the workflow run's shared LocalCluster
(``shared_cluster``, inside a snakemake run: :mod:`chunkatlas.analysis._shared_cluster`), a
running cluster at
``scheduler_address``, or workers started as SLURM jobs through dask-jobqueue
(``cluster="slurm"``).
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, fields

import dask
from distributed import Client, LocalCluster, WorkerPlugin

from chunkatlas._schema import default_field
from chunkatlas.analysis._shared_cluster import RUN_VARIABLE, cluster_spec, run_cluster_address
from chunkatlas.errors import ChunkatlasError

log = logging.getLogger(__name__)

CLUSTERS = ("local", "slurm")


def worker_settings(large_graph_warning_threshold: str | None = None) -> dict[str, object]:
    """Dask settings for out-of-core analysis, as the TileDB-SOMA Dask tutorial recommends
    (``large_graph_warning_threshold``: None, :class:`ClusterSettings`'s).

    Spilling, pausing and terminating are off: tasks are sized to fit, and a paused or killed
    worker only turns a memory problem into a hang or a retry storm.
    """
    return {
        "distributed.worker.memory.target": False,
        "distributed.worker.memory.spill": False,
        "distributed.worker.memory.pause": False,
        "distributed.worker.memory.terminate": False,
        "distributed.admin.large-graph-warning-threshold": large_graph_warning_threshold
        or ClusterSettings.large_graph_warning_threshold,
        "logging.distributed": "warning",
    }


@dataclass(frozen=True)
class SlurmOptions:
    """How dask-jobqueue submits the workers: one SLURM job per worker.

    Parameters
    ----------
    queue
        SLURM partition (``sbatch -p``); None: the cluster's default partition.
    cores
        Threads of each worker (``--cpus-per-task`` of its job).
    memory
        Memory of each worker job, e.g. ``"4GB"``; None: the rule's memory divided
        between the workers.
    walltime
        Time limit of each worker job (``sbatch -t``, ``HH:MM:SS``).
    job_extra_directives
        More ``#SBATCH`` options, e.g. ``["--account=abc", "--qos=short"]``.
    scheduler_host
        Address the scheduler (in the analysing process) listens on; the workers connect to it.
        ``127.0.0.1`` keeps everything on one node; on a cluster of several nodes give this
        node's address that the compute nodes reach (or its hostname).
    log_directory
        Folder for the workers' SLURM logs; None: SLURM's default (``slurm-JOBID.out`` in the
        working directory).
    start_timeout
        Seconds to wait for all worker jobs to start and connect.
    """

    queue: str | None = default_field("dask.slurm.queue")
    cores: int = default_field("dask.slurm.cores")
    memory: str | None = default_field("dask.slurm.memory")
    walltime: str = default_field("dask.slurm.walltime")
    job_extra_directives: tuple[str, ...] = default_field("dask.slurm.job_extra_directives")
    scheduler_host: str = default_field("dask.slurm.scheduler_host")
    log_directory: str | None = default_field("dask.slurm.log_directory")
    start_timeout: float = default_field("dask.slurm.start_timeout")

    @classmethod
    def from_mapping(cls, options: Mapping[str, object] | None) -> SlurmOptions:
        """Options from the config's ``dask.slurm`` section (missing keys take the defaults)."""
        options = dict(options or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ChunkatlasError(
                f"dask.slurm option {unknown[0]!r} is not one of {', '.join(sorted(known))}"
            )
        if "job_extra_directives" in options:
            options["job_extra_directives"] = tuple(options["job_extra_directives"] or ())
        slurm = cls(**options)
        if not isinstance(slurm.cores, int) or slurm.cores < 1:
            raise ChunkatlasError(
                f"dask.slurm.cores must be a positive integer, got {slurm.cores!r}"
            )
        return slurm


@dataclass(frozen=True)
class ClusterSettings:
    """Where analysis runs: ``workers`` Dask workers sharing ``memory_mb``, on a new
    LocalCluster (``cluster="local"``, ``threads_per_worker`` each), the running one at
    ``scheduler_address``, or SLURM jobs (``cluster="slurm"``, :class:`SlurmOptions`).  The
    config's ``dask`` section, typed (:meth:`chunkatlas.settings.DaskSettings.cluster`); the
    workers and memory are the analyze rule's threads and ``mem_mb``.  ``shared_cluster`` has
    effect only inside a workflow run that started one."""

    workers: int = 1
    memory_mb: int = default_field("dask.memory_mb_per_worker")  # one worker's
    cluster: str = default_field("dask.cluster")
    scheduler_address: str | None = default_field("dask.scheduler_address")
    connect_timeout: float = default_field("dask.connect_timeout")
    large_graph_warning_threshold: str = default_field("dask.large_graph_warning_threshold")
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    threads_per_worker: int = default_field("dask.threads_per_worker")  # a new LocalCluster's
    # use the workflow run's LocalCluster, when there is one
    shared_cluster: bool = default_field("dask.shared_cluster")

    @property
    def kind(self) -> str:
        """Which cluster the analysis runs on: "local" (a new LocalCluster, its workers children
        of this process), "run" (the workflow run's), "scheduler" (a running one) or "slurm"."""
        if self.cluster == "slurm":
            return "slurm"
        if self.scheduler_address:
            return "scheduler"
        return "run" if self.shared_cluster and os.environ.get(RUN_VARIABLE) else "local"


def dask_variables(settings: Mapping[str, object]) -> dict[str, str]:
    """Dask settings as ``DASK_*`` environment variables (how Dask reads config at start-up).

    Workers started outside this process (SLURM jobs, ``dask worker``) read Dask's
    configuration from the environment, not from this process's ``dask.config.set``.
    """
    return {
        "DASK_" + "__".join(part.upper().replace("-", "_") for part in key.split(".")): str(value)
        for key, value in settings.items()
    }


def dask_environment(settings: Mapping[str, object]) -> list[str]:
    """Shell lines that give worker jobs the same Dask settings (``export DASK_...``)."""
    return [
        f"export {name}={shlex.quote(value)}" for name, value in dask_variables(settings).items()
    ]


def check_cluster(cluster: str, scheduler_address: str | None) -> None:
    """Refuse an unknown cluster kind, or a SLURM cluster together with a running scheduler."""
    if cluster not in CLUSTERS:
        raise ChunkatlasError(f"dask.cluster {cluster!r} is not one of {', '.join(CLUSTERS)}")
    if cluster == "slurm" and scheduler_address:
        raise ChunkatlasError(
            f"dask.cluster 'slurm' starts its own scheduler; dask.scheduler_address "
            f"{scheduler_address!r} is allowed only with dask.cluster 'local'"
        )
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise ChunkatlasError(
            "dask.cluster 'slurm' needs SLURM's sbatch on PATH and there is none; "
            "allowed here: dask.cluster 'local' or a dask.scheduler_address"
        )


@contextmanager
def slurm_client(
    n_workers: int,
    memory_mb: int,
    options: SlurmOptions,
    settings: Mapping[str, object],
) -> Iterator[Client]:
    """A Client on ``n_workers`` Dask workers, each a SLURM job (dask-jobqueue SLURMCluster).

    The worker jobs are cancelled when the context ends, also on errors.
    """
    memory = options.memory or f"{max(256, memory_mb // n_workers)}MB"
    with slurm_cluster(memory, options, settings) as cluster, Client(cluster) as client:
        cluster.scale(jobs=n_workers)
        log.info(
            "Dask SLURMCluster: %d worker jobs x %d thread(s), %s each, partition %s; "
            "dashboard: %s",
            n_workers,
            options.cores,
            memory,
            options.queue or "(default)",
            client.dashboard_link,
        )
        log.debug("worker job script:\n%s", cluster.job_script())
        try:
            client.wait_for_workers(n_workers, timeout=options.start_timeout)
        except TimeoutError as err:
            raise ChunkatlasError(
                f"{n_workers} Dask worker jobs did not all start within "
                f"{options.start_timeout:g} s (dask.slurm.start_timeout); see squeue"
            ) from err
        yield client


def slurm_cluster(memory: str, options: SlurmOptions, settings: Mapping[str, object]):
    """A SLURMCluster (no jobs yet) whose worker jobs, one worker of ``memory`` each, start
    with the Dask ``settings`` of this process (:func:`dask_environment`)."""
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError as err:  # a dependency of chunkatlas; only a broken install lacks it
        raise ChunkatlasError(
            "dask.cluster 'slurm' needs the package dask-jobqueue, which is not installed"
        ) from err
    return SLURMCluster(
        cores=options.cores,
        processes=1,
        memory=memory,
        queue=options.queue,
        walltime=options.walltime,
        job_extra_directives=list(options.job_extra_directives),
        job_script_prologue=dask_environment(settings),
        log_directory=options.log_directory,
        scheduler_options={"host": options.scheduler_host, "dashboard_address": ":0"},
    )


def without_user_errors(record: logging.LogRecord) -> bool:
    """False for a worker's log of a task that failed with a ChunkatlasError (and of the tasks
    cancelled after it): the client reports that error itself, in one line."""
    message = record.getMessage()
    return "ChunkatlasError" not in message and "ended with CancelledError" not in message


class QuietUserErrors(WorkerPlugin):
    """Installs :func:`without_user_errors` on every worker, also those that join later."""

    name = "chunkatlas-quiet-user-errors"

    def setup(self, worker) -> None:
        for name in ("distributed.worker", "distributed.worker.state_machine"):
            logging.getLogger(name).addFilter(without_user_errors)


@contextmanager
def dask_client(settings: ClusterSettings, preload: Sequence[str] = ()) -> Iterator[Client]:
    """A Client on the cluster ``settings`` describe (:func:`cluster_client`), whose workers
    leave chunkatlas's one-line errors to the client."""
    with cluster_client(settings, preload) as client:
        client.register_plugin(QuietUserErrors())
        yield client


@contextmanager
def cluster_client(settings: ClusterSettings, preload: Sequence[str] = ()) -> Iterator[Client]:
    """A Client on the cluster ``settings`` describe.

    ``preload`` names modules a new LocalCluster's workers import as they start (Dask's worker
    preload, which calls their ``dask_setup``); running and SLURM clusters import what tasks
    need lazily.  The LocalCluster's and the SLURM scheduler's dashboards listen on free ports,
    so concurrent jobs never collide.
    """
    if settings.workers < 1:
        raise ChunkatlasError(f"workers must be a positive integer, got {settings.workers}")
    check_cluster(settings.cluster, settings.scheduler_address)
    # distributed sets its loggers to INFO on import; keep the rule's log to what matters.
    logging.getLogger("distributed").setLevel(logging.WARNING)
    dask_settings = worker_settings(settings.large_graph_warning_threshold)
    # in force while the cluster starts (a new LocalCluster passes them to its workers) and runs
    with (
        dask.config.set(dask_settings),
        kind_client(settings, preload, dask_settings) as client,
    ):
        yield client


def kind_client(
    settings: ClusterSettings, preload: Sequence[str], dask_settings: Mapping[str, object]
) -> AbstractContextManager[Client]:
    """The client of :attr:`ClusterSettings.kind`'s cluster (not yet entered)."""
    kind = settings.kind
    if kind == "slurm":
        return slurm_client(settings.workers, settings.memory_mb, settings.slurm, dask_settings)
    if kind == "scheduler":
        return scheduler_client(settings.scheduler_address, settings.connect_timeout)
    if kind == "run":
        return run_client(settings, preload, dask_settings)
    return local_client(settings, preload)


def worker_memory_mb(settings: ClusterSettings) -> int:
    """Each worker's share of the memory, at least 256 MB."""
    return max(256, settings.memory_mb // settings.workers)


@contextmanager
def scheduler_client(address: str, connect_timeout: float) -> Iterator[Client]:
    """A Client on the running cluster whose scheduler is at ``address``."""
    try:
        client = Client(address, timeout=connect_timeout)
    except OSError as err:
        raise ChunkatlasError(
            f"Dask scheduler {address} did not answer within {connect_timeout:g} s"
        ) from err
    with client:
        log.info("connected to Dask scheduler %s; dashboard: %s", address, client.dashboard_link)
        yield client


@contextmanager
def run_client(
    settings: ClusterSettings, preload: Sequence[str], dask_settings: Mapping[str, object]
) -> Iterator[Client]:
    """A Client on ``settings.workers`` workers of the workflow run's LocalCluster (started by
    the first analysis that asks for such workers, :mod:`._shared_cluster`)."""
    n_workers, connect_timeout = settings.workers, settings.connect_timeout
    spec = cluster_spec(
        n_workers, worker_memory_mb(settings), settings.threads_per_worker, preload, dask_settings
    )
    with (
        run_cluster_address(os.environ[RUN_VARIABLE], spec, connect_timeout) as address,
        Client(address, timeout=connect_timeout) as client,
    ):
        client.wait_for_workers(n_workers, timeout=connect_timeout)
        log.info(
            "%d workers of the run's Dask cluster; dashboard: %s",
            n_workers,
            client.dashboard_link,
        )
        yield client


@contextmanager
def local_client(settings: ClusterSettings, preload: Sequence[str]) -> Iterator[Client]:
    """A Client on a new LocalCluster of its own, its workers children of this process, stopped
    when the context ends."""
    per_worker_mb = worker_memory_mb(settings)
    with (
        LocalCluster(
            n_workers=settings.workers,
            threads_per_worker=settings.threads_per_worker,
            processes=True,
            memory_limit=f"{per_worker_mb}MB",
            dashboard_address=":0",
            preload=list(preload),
        ) as local,
        Client(local) as client,
    ):
        log.info(
            "Dask LocalCluster: %d workers x %d thread(s), %d MB each; dashboard: %s",
            settings.workers,
            settings.threads_per_worker,
            per_worker_mb,
            client.dashboard_link,
        )
        yield client
