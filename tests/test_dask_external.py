"""Analysis on a Dask cluster started outside chunkatlas (``dask scheduler`` + ``dask worker``).

The same results as on the LocalCluster that analysis starts itself: through
``chunkatlas analyze --scheduler-address`` and through Snakemake with ``dask.scheduler_address``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import yaml
from distributed import Client

from chunkatlas.cluster import dask_variables, worker_settings
from chunkatlas.remote.serve import stop_process

from .workflow_runs import REPO, geometries, snakemake, store_dir

pytestmark = pytest.mark.servers

BIN = Path(sys.executable).parent  # the dask and chunkatlas commands of this environment


def wait_for_file(path: Path, seconds: float, processes: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + seconds
    while not (path.exists() and path.stat().st_size > 0):
        for process in processes:
            assert process.poll() is None, f"{process.args} exited with {process.returncode}"
        assert time.monotonic() < deadline, f"{path} did not appear within {seconds:g} s"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory) -> Iterator[str]:
    """A scheduler and two single-threaded workers on loopback; yields the scheduler address."""
    where = tmp_path_factory.mktemp("dask")
    scheduler_file = where / "scheduler.json"
    # The workers get chunkatlas's recommended settings (no spilling, pausing or terminating).
    env = {**os.environ, **dask_variables(worker_settings())}
    started: list[subprocess.Popen] = []
    try:
        started.append(
            subprocess.Popen(
                [
                    str(BIN / "dask"),
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--dashboard-address",
                    "127.0.0.1:0",
                    "--scheduler-file",
                    str(scheduler_file),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        wait_for_file(scheduler_file, 60, started)
        for name in ("w1", "w2"):
            started.append(
                subprocess.Popen(
                    [
                        str(BIN / "dask"),
                        "worker",
                        "--scheduler-file",
                        str(scheduler_file),
                        "--nthreads",
                        "1",
                        "--host",
                        "127.0.0.1",
                        "--name",
                        name,
                        "--memory-limit",
                        "2GiB",
                        "--local-directory",
                        str(where / name),
                    ],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        with Client(scheduler_file=str(scheduler_file), timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        yield json.loads(scheduler_file.read_text())["address"]
    finally:
        for process in reversed(started):
            stop_process(process, 30)


def test_workers_import_chunkatlas(scheduler):
    with Client(scheduler, timeout=30) as client:
        where = client.run(lambda: __import__("chunkatlas").__file__)
        assert sorted(w["name"] for w in client.scheduler_info()["workers"].values()) == [
            "w1",
            "w2",
        ]
    assert set(where.values()) == {str(REPO / "chunkatlas" / "__init__.py")}


def analyze(store: Path, out: Path, *extra: str) -> None:
    done = subprocess.run(
        [
            str(BIN / "chunkatlas"),
            "analyze",
            str(store),
            str(out),
            "--chunk",
            "200",
            "--workers",
            "2",
            "--memory-mb",
            "2048",
            "--n-top-genes",
            "150",
            "--n-comps",
            "20",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def assert_same_analysis(ours: ad.AnnData, reference: ad.AnnData) -> None:
    """Identical HVGs and PCA coordinates; loadings equal to the last bits of float64."""
    np.testing.assert_array_equal(ours.var["highly_variable"], reference.var["highly_variable"])
    np.testing.assert_array_equal(ours.obsm["X_pca"], reference.obsm["X_pca"])
    np.testing.assert_allclose(ours.varm["PCs"], reference.varm["PCs"], rtol=0, atol=1e-12)


@pytest.mark.parametrize("engine", ["fused", "scanpy"])
def test_cli_on_external_cluster_equals_local_cluster(scheduler, consolidated, tmp_path, engine):
    store, _ = consolidated
    analyze(store, tmp_path / "local.zarr", "--engine", engine)
    analyze(store, tmp_path / "external.zarr", "--engine", engine, "--scheduler-address", scheduler)
    assert_same_analysis(
        ad.read_zarr(tmp_path / "external.zarr"), ad.read_zarr(tmp_path / "local.zarr")
    )


def test_workflow_on_external_cluster_equals_local_run(scheduler, test_run, tmp_path):
    workdir, config = test_run
    config = {**config, "dask": {**config["dask"], "scheduler_address": scheduler}}
    (tmp_path / "external.yaml").write_text(yaml.safe_dump(config))
    done = snakemake(
        tmp_path / "run", "--cores", "2", "--configfile", str(tmp_path / "external.yaml")
    )
    assert done.returncode == 0, done.stderr[-5000:]
    for tissue, chunk, shard, codec in geometries(config):
        point = store_dir(tissue, chunk, shard, codec)
        here = Path("results") / config["run"] / point
        log = tmp_path / "run" / here.parent.parent / "logs/analyze" / f"{point}.log"
        assert f"connected to Dask scheduler {scheduler}" in log.read_text()
        assert "LocalCluster" not in log.read_text()
        assert_same_analysis(
            ad.read_zarr(tmp_path / "run" / here / "hvg_pca.zarr"),
            ad.read_zarr(workdir / here / "hvg_pca.zarr"),
        )
