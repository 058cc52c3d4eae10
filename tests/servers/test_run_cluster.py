"""The workflow run's shared Dask cluster: started once, reused, one analysis at a time, stopped
with the run (or when the run's snakemake process is gone)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from chunkatlas.analysis import ClusterSettings, close_run, open_run
from chunkatlas.analysis._client import cluster_client
from chunkatlas.analysis._shared_cluster import OWNER, RUN_VARIABLE, alive, running
from chunkatlas.errors import ChunkatlasError

pytestmark = pytest.mark.servers

SHARED = ClusterSettings(workers=1, memory_mb=512, shared_cluster=True)


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setenv(RUN_VARIABLE, "")  # open_run sets it; monkeypatch undoes that after
    folder = open_run(tmp_path / ".snakemake" / "chunkatlas-clusters")
    yield folder
    close_run(folder)


def address_and_service(settings: ClusterSettings) -> tuple[str, int]:
    with cluster_client(settings) as client:
        return client.scheduler.address, client.run_on_scheduler(_pid)


def _pid() -> int:
    import os

    return os.getpid()


def wait_until(condition, what: str, seconds: float = 60) -> None:
    """Wait for ``condition`` (a liveness wait, not a speed check)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {seconds} s")
        time.sleep(0.1)


def test_jobs_of_a_run_share_one_cluster_and_close_run_stops_it(run):
    assert SHARED.kind == "run"
    first, service = address_and_service(SHARED)
    again, same_service = address_and_service(SHARED)
    assert (again, same_service) == (first, service)
    close_run(run)
    assert not alive(service)
    assert not run.exists()


def test_a_job_of_a_run_that_shares_nothing_starts_its_own():
    assert ClusterSettings(shared_cluster=True).kind == "local"  # no run open
    assert ClusterSettings(shared_cluster=False, scheduler_address="tcp://h:1").kind == "scheduler"


def test_jobs_at_once_get_a_cluster_each_and_other_settings_restart_it(run):
    with cluster_client(SHARED) as holding:
        other, _ = address_and_service(SHARED)  # slot 0 is taken: a second cluster
        assert other != holding.scheduler.address
    first = running(run / "slot-0")
    threads = ClusterSettings(workers=1, memory_mb=512, shared_cluster=True, threads_per_worker=2)
    with cluster_client(threads) as client:
        assert client.nthreads() and set(client.nthreads().values()) == {2}
        assert client.scheduler.address == running(run / "slot-0")["address"]
    assert not alive(first["pid"])  # the old one was stopped, not left running


def test_a_cluster_stops_by_itself_when_the_run_is_gone(run):
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        (run / OWNER).write_text(str(owner.pid))
        _, service = address_and_service(SHARED)
    finally:
        owner.kill()
        owner.wait()
    wait_until(lambda: not alive(service), "the service's exit after its run ended")
    assert running(run / "slot-0") is None


def test_a_cluster_that_cannot_start_is_one_line(run):
    with pytest.raises(ChunkatlasError, match="the run's Dask cluster did not start") as err:
        with cluster_client(SHARED, preload=("chunkatlas.no_such_module",)):
            pass
    assert "\n" not in str(err.value)
    assert "service.log" in str(err.value)
