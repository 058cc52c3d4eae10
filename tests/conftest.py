"""Shared fixtures: one tiny demo atlas and stores made from it, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from chunkatlas.ingest import fetch_tissue
from chunkatlas.ingest.demo import DemoSpec, write_demo_atlas
from chunkatlas.rewrite import consolidate_store, rechunk_store

from .support.workflow_runs import REPO, snakemake

TINY = DemoSpec(n_cells=2400, n_genes=400, seed=3)


@pytest.fixture(scope="session")
def atlas(tmp_path_factory) -> str:
    uri = str(tmp_path_factory.mktemp("atlas") / "atlas.soma")
    write_demo_atlas(uri, TINY)
    return uri


@pytest.fixture(scope="session")
def fetched(atlas, tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("fetched") / "lung.zarr"
    fetch_tissue(atlas, "lung", dest, chunk_rows=300)
    return dest


@pytest.fixture(scope="session")
def consolidated(fetched, tmp_path_factory) -> tuple[Path, Path]:
    """A rechunked (200 cells per chunk), consolidated store and its manifest."""
    where = tmp_path_factory.mktemp("store")
    store, manifest = where / "store.zarr", where / "store.manifest.json"
    rechunk_store(fetched, store, 200)
    consolidate_store(store, manifest)
    return store, manifest


@pytest.fixture(scope="session", params=[2, 3], ids=["zarr-v2", "zarr-v3"])
def each_format(request, fetched, tmp_path_factory) -> tuple[Path, Path]:
    """``consolidated`` written in each zarr format: what must work on both."""
    where = tmp_path_factory.mktemp(f"store-v{request.param}")
    store, manifest = where / "store.zarr", where / "store.manifest.json"
    rechunk_store(fetched, store, 200, zarr_format=request.param)
    consolidate_store(store, manifest)
    return store, manifest


@pytest.fixture(scope="session")
def test_run(tmp_path_factory) -> tuple[Path, dict]:
    """One uninterrupted run of config/test.yaml: (work directory, config)."""
    workdir = tmp_path_factory.mktemp("run")
    done = snakemake(workdir, "--cores", "2", "--configfile", str(REPO / "config/test.yaml"))
    assert done.returncode == 0, done.stderr[-5000:]
    return workdir, yaml.safe_load((REPO / "config/test.yaml").read_text())
