"""A run's completion records stay true to its stores: a store deleted by hand is written
again, and ``snakemake --delete-all-output`` leaves no store behind (a rule declares each
store's record, never the store, so Snakemake alone would see neither)."""

from __future__ import annotations

import pytest
import yaml

from chunkatlas.workflow import delete_stores, forget_lost_stores, record_of, store_of

from ..support.workflow_runs import REPO, snakemake


def test_a_record_and_its_store_name_each_other():
    assert record_of("r/lung/cells-500-shard-1-packed/store.zarr") == (
        "r/lung/cells-500-shard-1-packed/store.objects.json"
    )
    assert record_of("r/demo_atlas.soma") == "r/demo_atlas.objects.json"
    assert store_of("r/lung/fetched.objects.json") == "r/lung/fetched.zarr"
    assert store_of("r/demo_atlas.objects.json", ".soma") == "r/demo_atlas.soma"
    with pytest.raises(ValueError, match="not a store"):
        record_of("r/summary.tsv")


def test_records_of_lost_stores_are_forgotten_and_stores_deleted_with_their_records(tmp_path):
    kept, lost = tmp_path / "lung" / "store.zarr", tmp_path / "blood" / "store.zarr"
    for store in (kept, lost):
        (store / "X").mkdir(parents=True)
        (store / "zarr.json").write_text("{}")
        store.with_name("store.objects.json").write_text('{"objects": 1, "bytes": 2}')
    (tmp_path / "demo_atlas.soma").mkdir()
    (tmp_path / "demo_atlas.objects.json").write_text("{}")
    (tmp_path / "summary.tsv").write_text("not a store\n")
    __import__("shutil").rmtree(lost)

    assert forget_lost_stores(tmp_path) == [str(lost.with_name("store"))]
    assert not lost.with_name("store.objects.json").exists()
    assert kept.with_name("store.objects.json").exists()
    assert forget_lost_stores(tmp_path) == []

    named = delete_stores(tmp_path, dry_run=True)
    assert sorted(named) == sorted([str(kept), str(tmp_path / "demo_atlas.soma")])
    assert kept.exists()
    assert sorted(delete_stores(tmp_path)) == sorted(named)
    assert not kept.exists() and not (tmp_path / "demo_atlas.soma").exists()
    assert (tmp_path / "summary.tsv").exists()


@pytest.mark.workflow
def test_a_store_deleted_by_hand_is_rebuilt_and_delete_all_output_leaves_no_store(tmp_path):
    config = yaml.safe_load((REPO / "config/test.yaml").read_text())
    config.update(run="records", tissues=["lung"], orientations=["cells"], shards=[1])
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    results = tmp_path / "results" / "records"
    store = results / "lung" / "cells-300-shard-1-packed" / "store.zarr"
    # demo, fetch, rechunk, consolidate (a target relative to the working directory)
    target = str((store.parent / "store.manifest.json").relative_to(tmp_path))
    args = ["--cores", "2", "--configfile", str(tmp_path / "c.yaml")]

    done = snakemake(tmp_path, target, *args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert store.is_dir()
    __import__("shutil").rmtree(store)
    again = snakemake(tmp_path, target, *args)
    assert again.returncode == 0, again.stderr[-3000:]
    gone = store.with_name("store").relative_to(tmp_path)
    assert f"chunkatlas: {gone} is gone: its job runs again" in again.stderr
    assert "rule rechunk" in again.stderr and store.is_dir()
    assert "Nothing to be done" in snakemake(tmp_path, target, *args).stderr

    cleared = snakemake(tmp_path, "--configfile", str(tmp_path / "c.yaml"), "--delete-all-output")
    assert cleared.returncode == 0, cleared.stderr[-3000:]
    left = [p for p in results.rglob("*") if p.suffix in (".zarr", ".soma")]
    assert left == [] and not list(results.rglob("*.objects.json"))
