"""Analysis on a Dask cluster started outside chunkatlas (``dask scheduler`` + ``dask worker``).

The same results as on the LocalCluster that analysis starts itself: through
``chunkatlas analyze --scheduler-address`` and through Snakemake with ``dask.scheduler_address``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import yaml
from distributed import Client

from ..support.dask_cluster import BIN, external_cluster
from ..support.workflow_runs import REPO, geometries, one_tissue_config, snakemake, store_dir

pytestmark = pytest.mark.servers


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory) -> Iterator[str]:
    """A scheduler and two single-threaded workers on loopback; yields the scheduler address."""
    with external_cluster(tmp_path_factory.mktemp("dask")) as address:
        yield address


def test_workers_import_chunkatlas(scheduler):
    with Client(scheduler, timeout=30) as client:
        where = client.run(lambda: __import__("chunkatlas").__file__)
        assert sorted(w["name"] for w in client.scheduler_info()["workers"].values()) == [
            "w1",
            "w2",
        ]
    assert set(where.values()) == {str(REPO / "src" / "chunkatlas" / "__init__.py")}


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
    workdir, _ = test_run
    _, config = one_tissue_config(tmp_path)  # its stores are the local run's
    config = {**config, "dask": {**config["dask"], "scheduler_address": scheduler}}
    (tmp_path / "external.yaml").write_text(yaml.safe_dump(config))
    done = snakemake(
        tmp_path / "run", "--cores", "2", "--configfile", str(tmp_path / "external.yaml")
    )
    assert done.returncode == 0, done.stderr[-5000:]
    for tissue, orientation, chunk, shard, codec in geometries(config):
        point = store_dir(tissue, orientation, chunk, shard, codec)
        here = Path("results") / config["run"] / point
        log = tmp_path / "run" / here.parent.parent / "logs/analyze" / f"{point}.log"
        assert f"connected to Dask scheduler {scheduler}" in log.read_text()
        assert "LocalCluster" not in log.read_text()
        assert_same_analysis(
            ad.read_zarr(tmp_path / "run" / here / "hvg_pca.zarr"),
            ad.read_zarr(workdir / here / "hvg_pca.zarr"),
        )
