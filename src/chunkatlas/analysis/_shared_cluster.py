"""One Dask LocalCluster per workflow run, shared by the run's analyze jobs.

Starting a LocalCluster (worker processes, their imports, numba's cached kernels) and stopping
it costs seconds per analyze job: a third of a 70,000-cell analysis.  The Snakefile's
``onstart`` calls :func:`open_run` (through :func:`chunkatlas.workflow.open_run_clusters`, which
keeps a run's clusters under ``.snakemake/``), which tells the run's jobs, through the
environment, where the run keeps its clusters.  The first analyze job that needs one starts it
as a service process
of its own (:func:`serve`); later jobs connect to it.

A cluster serves one analysis at a time: a job holds its *slot*'s lock while it analyses, so
the per-pass costs, the memory budget and the peak memory recorded are that analysis's.  Jobs
that run at once take a slot each (a run has as many clusters as analyze jobs ever ran
together).  A slot whose cluster was started with other settings (workers, memory, threads) is
restarted with the job's.  ``onsuccess``/``onerror`` stop every cluster (:func:`close_run`); a
service also stops by itself when the snakemake process that opened the run is gone, so an
interrupted run leaves no workers behind.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from chunkatlas.errors import ChunkatlasError
from chunkatlas.store import write_json_atomic

log = logging.getLogger(__name__)

#: Where the run keeps its clusters; set by :func:`open_run`, inherited by the run's jobs.
RUN_VARIABLE = "CHUNKATLAS_RUN_CLUSTERS"
OWNER = "owner.pid"
CLUSTER = "cluster.json"
SERVICE_PID = "service.pid"


def open_run(runs: str | os.PathLike) -> Path:
    """Make this process's folder of clusters under ``runs`` and tell the processes it starts
    (and remove the folders of earlier runs that were killed: their clusters stopped by
    themselves)."""
    runs = Path(runs).resolve()
    for earlier in runs.glob("*"):
        if earlier.name.isdigit() and not alive(int(earlier.name)):
            shutil.rmtree(earlier, ignore_errors=True)
    run = runs / str(os.getpid())
    run.mkdir(parents=True, exist_ok=True)
    (run / OWNER).write_text(str(os.getpid()))
    os.environ[RUN_VARIABLE] = str(run)
    return run


def close_run(run: str | os.PathLike | None = None, timeout: float = 30.0) -> None:
    """Stop every cluster of the run (default: this process's) and remove its folder."""
    run = run or os.environ.pop(RUN_VARIABLE, None)
    if not run or not Path(run).is_dir():
        return
    services = [service for slot in Path(run).glob("slot-*") if (service := running(slot))]
    stop_services([service["pid"] for service in services], timeout)
    shutil.rmtree(run, ignore_errors=True)


def cluster_spec(
    workers: int,
    per_worker_mb: int,
    threads_per_worker: int,
    preload: Sequence[str],
    settings: Mapping[str, object],
) -> dict[str, object]:
    """What a run's cluster is started with; a job reuses a cluster only with the same."""
    return {
        "workers": workers,
        "per_worker_mb": per_worker_mb,
        "threads_per_worker": threads_per_worker,
        "preload": sorted(preload),
        "dask": dict(settings),
    }


@contextmanager
def run_cluster_address(
    run: str | os.PathLike, spec: Mapping[str, object], timeout: float
) -> Iterator[str]:
    """The address of a cluster of the run, started as ``spec`` says, held for this job alone
    until the context ends."""
    with free_slot(Path(run)) as slot:
        service = running(slot)
        if service is not None and service["spec"] != spec:
            log.info("the run's Dask cluster in %s has other settings; restarting it", slot.name)
            stop_services([service["pid"]], timeout)
            service = None
        if service is None:
            service = start_service(slot, spec, timeout)
        else:
            log.info("reusing the run's Dask cluster %s", service["address"])
        yield service["address"]


@contextmanager
def free_slot(run: Path) -> Iterator[Path]:
    """The first slot of ``run`` no other job holds, locked until the context ends."""
    for number in range(1024):
        slot = run / f"slot-{number}"
        slot.mkdir(exist_ok=True)
        handle = open(slot / "lock", "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        try:
            yield slot
        finally:
            handle.close()  # releases the lock
        return
    raise ChunkatlasError(f"no free slot for a Dask cluster in {run}")


def running(slot: Path) -> dict | None:
    """The slot's service (address, pid, spec) if it is still alive."""
    try:
        service = json.loads((slot / CLUSTER).read_text())
    except (OSError, ValueError):
        return None
    return service if alive(service["pid"]) else None


def alive(pid: int) -> bool:
    """Whether the process ``pid`` runs (an exited one its parent has not reaped does not)."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def stop_services(pids: Sequence[int], timeout: float) -> None:
    """Ask the services to stop, and wait (at most ``timeout`` s) until they have."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)


def start_service(slot: Path, spec: Mapping[str, object], timeout: float) -> dict:
    """Start the slot's cluster as a process of its own and wait until it listens."""
    for name in (CLUSTER, SERVICE_PID):
        (slot / name).unlink(missing_ok=True)
    service_log = slot / "service.log"
    with open(service_log, "ab") as output:
        subprocess.run(  # returns as soon as the service has forked away
            [sys.executable, "-m", __name__, str(slot), json.dumps(spec)],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not stopped with the job that started it
            check=True,
        )
    deadline = time.monotonic() + timeout
    while (service := running(slot)) is None:
        pid = int((slot / SERVICE_PID).read_text() or 0) if (slot / SERVICE_PID).exists() else 0
        if pid and not alive(pid):
            tail = service_log.read_text(errors="replace").strip().splitlines()[-1:]
            raise ChunkatlasError(
                f"the run's Dask cluster did not start: {tail[0] if tail else 'no output'}; "
                f"see {service_log}"
            )
        if time.monotonic() > deadline:
            if pid:
                stop_services([pid], timeout)
            raise ChunkatlasError(
                f"the run's Dask cluster did not start within {timeout:g} s "
                f"(dask.connect_timeout); see {service_log}"
            )
        time.sleep(0.05)
    log.info(
        "started the run's Dask cluster %s: %d workers x %d thread(s), %d MB each",
        service["address"],
        spec["workers"],
        spec["threads_per_worker"],
        spec["per_worker_mb"],
    )
    return service


def serve(slot: Path, spec: Mapping[str, object]) -> None:
    """Run the slot's LocalCluster until SIGTERM or until the run's snakemake process ends."""
    import dask
    from distributed import LocalCluster

    owner = int((slot.parent / OWNER).read_text())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with (
        dask.config.set(spec["dask"]),
        LocalCluster(
            n_workers=spec["workers"],
            threads_per_worker=spec["threads_per_worker"],
            processes=True,
            memory_limit=f"{spec['per_worker_mb']}MB",
            dashboard_address=":0",
            preload=list(spec["preload"]),
        ) as cluster,
    ):
        write_json_atomic(
            slot / CLUSTER,
            {"address": cluster.scheduler_address, "pid": os.getpid(), "spec": spec},
        )
        while not stop.wait(1.0) and alive(owner):
            pass
    service = running(slot)
    if service is not None and service["pid"] == os.getpid():  # not a successor's
        (slot / CLUSTER).unlink(missing_ok=True)


if __name__ == "__main__":
    # Fork away from the job that starts the service: its process tree (and so Snakemake's
    # benchmark of it) never holds the cluster, which every analysis of the run uses.
    if os.fork():
        os._exit(0)
    (Path(sys.argv[1]) / SERVICE_PID).write_text(str(os.getpid()))
    serve(Path(sys.argv[1]), json.loads(sys.argv[2]))
