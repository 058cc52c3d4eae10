"""The workflow through Snakemake itself: dry-run job counts and one tiny end-to-end run."""

from __future__ import annotations

import json
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml
import zarr

from ..support.oracle import assert_matches_reference, in_memory_reference
from ..support.workflow_runs import (
    REPO,
    geometries,
    job_counts,
    results_dir,
    snakemake,
    store_dir,
    stores,
)

pytestmark = pytest.mark.workflow

PER_STORE = ("rechunk", "consolidate")
PER_TISSUE = ("fetch", "remote")  # remote: all the tissue's stores (accounting is on by default)
PER_ANALYSIS = ("analyze", "plot_pca")


@pytest.mark.parametrize(
    "name",
    ["config.yaml", "test.yaml", "census.yaml", "pbmc.yaml", "heldout.yaml", "atlas.yaml"],
)
def test_dry_run_has_one_job_per_tissue_and_chunk(tmp_path, name):
    config = yaml.safe_load((REPO / "config" / name).read_text())
    n_tissues, n_stores = len(config["tissues"]), len(list(stores(config)))
    n_analysed = len(list(geometries(config)))
    done = snakemake(tmp_path, "-n", "--configfile", str(REPO / "config" / name))
    assert done.returncode == 0, done.stderr
    counts = job_counts(done.stdout + done.stderr)
    for rule in PER_TISSUE:
        assert counts[rule] == n_tissues
    for rule in PER_STORE:
        assert counts[rule] == n_stores
    for rule in PER_ANALYSIS:
        assert counts[rule] == n_analysed
    assert counts["summary"] == 1
    assert counts.get("demo", 0) == (1 if "demo_atlas" in config else 0)


def test_bad_config_stops_snakemake_with_one_line(tmp_path):
    bad = yaml.safe_load((REPO / "config/test.yaml").read_text())
    bad["chunks"] = [100, -5]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    done = snakemake(tmp_path, "-n", "--configfile", str(tmp_path / "bad.yaml"))
    assert done.returncode != 0
    assert "chunkatlas: error: config chunks.1: -5 is less than the minimum of 1" in done.stderr
    assert not (tmp_path / "results").exists()


def test_end_to_end_outputs(test_run):
    workdir, config = test_run
    for tissue, orientation, chunk, shard, codec in geometries(config):
        here = results_dir(workdir, config) / store_dir(tissue, orientation, chunk, shard, codec)
        store = here / "store.zarr"
        manifest = json.loads((here / "store.manifest.json").read_text())
        group = zarr.open_consolidated(str(store), mode="r")
        n_obs, _ = group["X"].attrs["shape"]
        per_cell = group["X/data"].shape[0] / n_obs
        assert group["X/data"].chunks == (int(np.ceil(per_cell * chunk)),)
        assert manifest["consolidated"] and manifest["n_obs"] == n_obs
        # every store of the run is zarr v3 (the default zarr_format)
        assert manifest["zarr_format"] == group.metadata.zarr_format == 3
        for written in (here.parent / "fetched.zarr", here / "hvg_pca.zarr"):
            assert zarr.open_group(written, mode="r").metadata.zarr_format == 3
        assert {a["path"] for a in manifest["arrays"]} >= {"X/data", "X/indices", "X/indptr"}
        result = ad.read_zarr(here / "hvg_pca.zarr")
        assert result.X is None
        assert {"highly_variable", "means", "dispersions_norm"} <= set(result.var)
        assert {"hvg", "pca"} <= set(result.uns)
        assert result.obsm["X_pca"].shape[1] == config["analysis"]["n_comps"]
        assert (here / "pca.png").read_bytes()[:4] == b"\x89PNG"
        analysis = config["analysis"]
        reference = in_memory_reference(
            store,
            analysis["flavor"],
            analysis["n_top_genes"],
            analysis["n_comps"],
            batch_key=analysis["batch_key"],  # the test config selects per dataset
        )
        assert_matches_reference(result, reference)
        np.testing.assert_array_equal(
            result.var["highly_variable_nbatches"], reference.var["highly_variable_nbatches"]
        )
    genes = [store for store in stores(config) if store[1] == "genes"]
    assert genes, "the test config writes gene-major stores"
    for tissue, orientation, chunk, shard, codec in genes:
        here = results_dir(workdir, config) / store_dir(tissue, orientation, chunk, shard, codec)
        group = zarr.open_consolidated(str(here / "store.zarr"), mode="r")
        assert group["X"].attrs["encoding-type"] == "csc_matrix"
        n_vars = group["X"].attrs["shape"][1]
        per_gene = group["X/data"].shape[0] / n_vars
        assert group["X/data"].chunks == (int(np.ceil(per_gene * chunk)),)
        cells = ad.read_zarr(
            here.parent / f"cells-{config['chunks'][0]}-shard-1-{codec}/store.zarr"
        )
        np.testing.assert_array_equal(
            ad.read_zarr(here / "store.zarr").X.toarray(), cells.X.toarray()
        )
        assert not (here / "hvg_pca.zarr").exists()  # measured, not analysed


def test_stores_hold_nothing_but_the_store(test_run):
    """No Snakemake marker (or anything else) inside a store the run wrote: plain anndata
    reads every one without a warning, and the store's files are exactly its manifest's."""
    workdir, config = test_run
    results = results_dir(workdir, config)
    written = [*results.rglob("*.zarr"), *results.rglob("*.soma")]
    assert len(written) == 1 + len(config["tissues"]) + len(list(stores(config))) + len(
        list(geometries(config))
    )
    for store in written:
        assert not list(store.rglob(".snakemake*")), store
    for store in results.rglob("*.zarr"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ad.read_zarr(store)
    for manifest_path in results.rglob("store.manifest.json"):
        manifest = json.loads(manifest_path.read_text())
        store = manifest_path.with_name("store.zarr")
        assert manifest["moved"]["objects"] == len([p for p in store.rglob("*") if p.is_file()])


def test_summary_has_one_row_per_grid_point(test_run):
    workdir, config = test_run
    summary = pd.read_csv(results_dir(workdir, config) / "summary.tsv", sep="\t")
    keys = ["tissue", "orientation", "chunk", "shard", "codec"]
    written = set(summary[keys].itertuples(index=False, name=None))
    assert len(summary) == len(written) == len(set(stores(config)))
    assert written == set(stores(config))
    for step in ("fetch", "rechunk", "consolidate", "remote"):
        assert (summary[f"{step}_seconds"] > 0).all()
        assert (summary[f"{step}_max_rss_mb"] > 0).all()
    assert summary[summary.orientation == "genes"].n_hvg.isna().all()  # measured only
    summary = summary[summary.orientation == "cells"]
    assert (summary.analyze_seconds > 0).all() and (summary.analyze_max_rss_mb > 0).all()
    assert (summary.n_hvg == config["analysis"]["n_top_genes"]).all()
    assert (summary.nnz > 0).all() and (summary.store_bytes > 0).all()
    # each pass's reads, as analysis.read had them (over S3 in the test config)
    assert (summary.analysis_read == config["analysis"]["read"]).all()
    for step in ("moments", "gram"):  # no pass 1: the stores' obs record raw_sum
        assert (summary[f"analyze_{step}_requests"] > 0).all()
        assert (summary[f"analyze_{step}_bytes"] > 0).all()
    assert "analyze_library_sizes_requests" not in summary  # X decoded twice, not three times
    assert (summary["analyze_projection_requests"] == 0).all()
    passes = pd.read_csv(results_dir(workdir, config) / "analysis_passes.tsv", sep="\t")
    assert len(passes.groupby(keys)) == len(summary)
    assert (passes.read == "s3").all() and (passes.retries == 0).all()


def test_analyses_of_a_run_share_one_cluster_stopped_when_the_run_ends(test_run):
    import psutil

    workdir, config = test_run
    logs = [p.read_text() for p in (results_dir(workdir, config) / "logs/analyze").rglob("*.log")]
    assert len(logs) == len(list(geometries(config)))
    assert sum("started the run's Dask cluster" in log for log in logs) == 1
    assert sum("reusing the run's Dask cluster" in log for log in logs) == len(logs) - 1
    for tissue, orientation, chunk, shard, codec in geometries(config):
        here = results_dir(workdir, config) / store_dir(tissue, orientation, chunk, shard, codec)
        recorded = ad.read_zarr(here / "hvg_pca.zarr").uns["chunkatlas"]
        assert recorded["cluster"] == "run" and recorded["workers_peak_rss_mb"] > 0
    summary = pd.read_csv(results_dir(workdir, config) / "summary.tsv", sep="\t")
    summary = summary[summary.orientation == "cells"]  # gene-major stores are not analysed
    # the job's own process tree is the driver; its workers are added to it
    assert (summary.analyze_max_rss_mb > summary.analyze_workers_max_rss_mb).all()
    assert not any((workdir / ".snakemake" / "chunkatlas-clusters").iterdir())
    commands = [" ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"])]
    assert not [command for command in commands if str(workdir) in command]  # no worker left


def test_every_rule_logged_and_rerun_is_a_no_op(test_run):
    workdir, config = test_run
    logs = list((results_dir(workdir, config) / "logs").rglob("*.log"))
    assert any("dashboard: http" in p.read_text() for p in logs if "analyze" in str(p))
    done = snakemake(workdir, "-n", "--configfile", str(REPO / "config/test.yaml"))
    assert "Nothing to be done" in done.stdout + done.stderr


def test_pbmc_config_reproduces_the_remote_zarr_tutorial(tmp_path):
    done = snakemake(tmp_path, "--cores", "2", "--configfile", str(REPO / "config/pbmc.yaml"))
    assert done.returncode == 0, done.stderr[-5000:]
    costs = {}
    for chunk in (5, 25):
        here = tmp_path / "results/pbmc" / store_dir("pbmc", "genes", chunk)
        group = zarr.open_consolidated(str(here / "store.zarr"), mode="r")
        assert group["X"].chunks == (700, chunk)
        assert group["layers/scaled"].chunks == (700, chunk)
        costs[chunk] = pd.read_csv(here / "remote.tsv", sep="\t").set_index("pattern")
        assert ad.read_zarr(here / "hvg_pca.zarr").obsm["X_pca"].shape == (700, 30)
    assert costs[5].loc["one_gene", "requests"] == 1
    assert costs[25].loc["fifty_genes", "requests"] < costs[5].loc["fifty_genes", "requests"]
    assert costs[25].loc["fifty_genes", "bytes"] > costs[5].loc["fifty_genes", "bytes"]
    summary = pd.read_csv(tmp_path / "results/pbmc/summary.tsv", sep="\t")
    assert list(summary["http_one_gene_requests"]) == [1, 1]
    remote = pd.read_csv(tmp_path / "results/pbmc/remote.tsv", sep="\t")
    assert len(remote) == 2 * 5
    for figure in ("remote", "steps", "store_size"):
        assert (tmp_path / f"results/pbmc/summary/{figure}.png").read_bytes()[:4] == b"\x89PNG"
