"""A Dask cluster started outside chunkatlas: ``dask scheduler`` and ``dask worker`` processes
on loopback, as a user would start them on other machines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from distributed import Client

from chunkatlas.analysis._client import dask_variables, worker_settings
from chunkatlas.study._server_process import stop_process

BIN = Path(sys.executable).parent  # the dask and chunkatlas commands of this environment


def wait_for_file(path: Path, seconds: float, processes: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + seconds
    while not (path.exists() and path.stat().st_size > 0):
        for process in processes:
            assert process.poll() is None, f"{process.args} exited with {process.returncode}"
        assert time.monotonic() < deadline, f"{path} did not appear within {seconds:g} s"
        time.sleep(0.2)


@contextmanager
def external_cluster(where: Path, names: Sequence[str] = ("w1", "w2")) -> Iterator[str]:
    """A scheduler and one single-threaded worker per name; yields the scheduler address.

    Each worker runs in a folder of its own under ``where`` (its working and local directory),
    as on a machine that shares no file system with the others.  The workers get chunkatlas's
    recommended settings (no spilling, pausing or terminating).
    """
    where.mkdir(parents=True, exist_ok=True)
    scheduler_file = where / "scheduler.json"
    env = {**os.environ, **dask_variables(worker_settings())}
    quiet = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    started: list[subprocess.Popen] = []
    try:
        scheduler = [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0"]
        scheduler += ["--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(scheduler_file)]
        started.append(subprocess.Popen(scheduler, cwd=where, **quiet))
        wait_for_file(scheduler_file, 60, started)
        for name in names:
            home = where / name
            home.mkdir()
            worker = [str(BIN / "dask"), "worker", "--scheduler-file", str(scheduler_file)]
            worker += ["--nthreads", "1", "--host", "127.0.0.1", "--name", name]
            worker += ["--memory-limit", "2GiB", "--local-directory", str(home)]
            started.append(subprocess.Popen(worker, cwd=home, **quiet))
        with Client(scheduler_file=str(scheduler_file), timeout=60) as client:
            client.wait_for_workers(len(names), timeout=120)
        yield json.loads(scheduler_file.read_text())["address"]
    finally:
        for process in reversed(started):
            stop_process(process, 30)
