"""Faults: processes killed with SIGKILL mid-write or mid-analysis lose nothing and leave no
half-written store that any reader accepts."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import psutil
import pytest
import scipy.sparse as sp
import yaml

from chunkatlas.errors import ChunkatlasError
from chunkatlas.rewrite import consolidate_store
from chunkatlas.store import read_dask_backed, verify_store

from .support.workflow_runs import REPO, SNAKEMAKE, geometries, one_tissue_config, store_dir

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "chunkatlas.cli"]


@pytest.fixture(scope="module")
def big_source(tmp_path_factory) -> Path:
    """20,000 cells: large enough that rechunking by 40 cells takes a few seconds."""
    rng = np.random.default_rng(5)
    n_obs, n_vars = 20_000, 300
    counts = sp.random(n_obs, n_vars, density=0.05, format="csr", dtype=np.float32, rng=rng)
    counts.data = np.ceil(counts.data * 20)
    adata = ad.AnnData(counts)
    adata.obs_names = [f"c{i}" for i in range(n_obs)]
    adata.var_names = [f"g{i}" for i in range(n_vars)]
    adata.obs["cell_type"] = rng.choice(list("abcdef"), n_obs)
    path = tmp_path_factory.mktemp("big") / "source.zarr"
    adata.write_zarr(path)
    return path


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def kill_writer_at_random(argv: list[str], dest: Path, seed: int, max_delay: float) -> None:
    """Start the writer of ``dest``; once it writes (its temporary exists), kill it at a random
    moment within ``max_delay`` seconds."""
    writer = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(
        lambda: any(dest.parent.glob(f".{dest.name}.tmp-*")) or writer.poll() is not None,
        120,
        "the writer to start",
    )
    time.sleep(random.Random(seed).uniform(0.0, max_delay))
    writer.send_signal(signal.SIGKILL)
    writer.wait()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_rechunk_killed_at_random_points_leaves_nothing_readable(big_source, tmp_path, seed):
    dest = tmp_path / "store.zarr"
    kill_writer_at_random(
        [*CLI, "rechunk", str(big_source), str(dest), "--chunk", "40"], dest, seed, 1.5
    )
    if dest.exists():  # finished before the kill: then it must be whole
        consolidate_store(dest, tmp_path / "m.json")
        np.testing.assert_array_equal(
            ad.read_zarr(dest).X.toarray(), ad.read_zarr(big_source).X.toarray()
        )
        return
    with pytest.raises(ChunkatlasError, match="store not found"):
        read_dask_backed(dest, 100)
    with pytest.raises(ChunkatlasError, match="never completed"):
        verify_store(dest, tmp_path / "store.manifest.json")
    # and the next writer cleans up after the killed one
    subprocess.run(
        [*CLI, "rechunk", str(big_source), str(dest), "--chunk", "4000"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.zarr"]


@pytest.mark.parametrize("seed", [0, 1])
def test_fetch_killed_at_random_points_leaves_nothing(atlas, tmp_path, seed):
    dest = tmp_path / "lung.zarr"
    kill_writer_at_random(
        [*CLI, "fetch", atlas, "lung", str(dest), "--chunk-rows", "20"], dest, seed, 0.5
    )
    if not dest.exists():
        with pytest.raises(ChunkatlasError, match="store not found"):
            read_dask_backed(dest, 100)
    else:
        assert ad.read_zarr(dest).n_obs > 0


def analysis_args(store: Path, out: Path) -> list[str]:
    return [
        *CLI,
        "analyze",
        str(store),
        str(out),
        "--chunk",
        "250",
        "--workers",
        "2",
        "--n-top-genes",
        "100",
        "--n-comps",
        "10",
    ]


def test_worker_killed_during_analysis_changes_nothing(big_source, tmp_path):
    calm = subprocess.run(
        analysis_args(big_source, tmp_path / "calm.zarr"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert calm.returncode == 0, calm.stderr

    log = tmp_path / "disturbed.log"
    with log.open("w") as stderr:
        run = subprocess.Popen(
            analysis_args(big_source, tmp_path / "disturbed.zarr"),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        # the fused engine (the default) logs each pass over X as it starts
        wait_for(lambda: "moments (pass 2" in log.read_text(), 300, "analysis to start")
        # The nannies live in the analysis process; each spawns one worker process.
        workers = [
            p
            for p in psutil.Process(run.pid).children(recursive=True)
            if "spawn_main" in " ".join(p.cmdline())
        ]
        assert workers, "no Dask worker process found"
        os.kill(workers[0].pid, signal.SIGKILL)
        assert run.wait(timeout=600) == 0, log.read_text()[-3000:]
    assert "Restarting worker" in log.read_text()  # the kill did hit a running worker
    calm_result = ad.read_zarr(tmp_path / "calm.zarr")
    disturbed = ad.read_zarr(tmp_path / "disturbed.zarr")
    np.testing.assert_array_equal(
        calm_result.var["highly_variable"], disturbed.var["highly_variable"]
    )
    np.testing.assert_allclose(
        calm_result.obsm["X_pca"], disturbed.obsm["X_pca"], rtol=1e-5, atol=1e-5
    )


def chunk_files(store: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize("stage", ["rechunk", "analyze"])
def test_snakemake_killed_mid_stage_then_rerun_gives_identical_results(test_run, tmp_path, stage):
    workdir, _ = test_run
    config_path, config = one_tissue_config(tmp_path)  # its stores are the local run's
    args = [
        *SNAKEMAKE,
        "--directory",
        str(tmp_path),
        "--cores",
        "2",
        "--configfile",
        str(config_path),
    ]
    run = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    logs = tmp_path / "results" / config["run"] / "logs" / stage
    started = lambda: logs.exists() and any(logs.iterdir())  # noqa: E731
    wait_for(lambda: started() or run.poll() is not None, 600, f"a {stage} job to start")
    # Snakemake ended before the stage: a job failed, say which rather than time out
    ended = run.poll() is not None
    assert not ended, f"Snakemake ended before a {stage} job started: {failed_jobs(tmp_path)}"
    os.killpg(run.pid, signal.SIGKILL)  # Snakemake, its jobs and their Dask workers
    run.wait()
    # A killed Snakemake leaves its lock; the documented recovery is --unlock, then the same
    # command again (with --rerun-incomplete should Snakemake ask for it).
    subprocess.run([*args, "--unlock"], check=True, capture_output=True, timeout=300)
    again = subprocess.run(
        [*args, "--rerun-incomplete"], capture_output=True, text=True, timeout=900
    )
    assert again.returncode == 0, again.stderr[-3000:]
    for tissue, orientation, chunk, shard, codec in geometries(config):
        here = Path("results") / config["run"] / store_dir(tissue, orientation, chunk, shard, codec)
        assert chunk_files(tmp_path / here / "store.zarr") == chunk_files(
            workdir / here / "store.zarr"
        )
        ours = ad.read_zarr(tmp_path / here / "hvg_pca.zarr")
        reference = ad.read_zarr(workdir / here / "hvg_pca.zarr")
        np.testing.assert_array_equal(ours.var["highly_variable"], reference.var["highly_variable"])
        np.testing.assert_array_equal(ours.obsm["X_pca"], reference.obsm["X_pca"])
    assert not list((tmp_path / "results").rglob(".*.tmp-*"))


def failed_jobs(workdir: Path) -> str:
    """The failed jobs of the newest Snakemake log under ``workdir``, and their logs' last line."""
    logs = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"))
    if not logs:
        return "no Snakemake log"
    text = logs[-1].read_text()
    return "; ".join(
        line.strip() for line in text.splitlines() if "Error in rule" in line or "died" in line
    )


def a_job_past_its_imports(run: subprocess.Popen) -> bool:
    """Whether one of the run's jobs is running its script past its imports (a process that
    ends while it is looked at is not)."""
    try:
        children = psutil.Process(run.pid).children(recursive=True)
    except psutil.Error:  # the run itself ended
        return False
    for proc in children:
        try:
            if ".snakemake/scripts/" in " ".join(proc.cmdline()) and past_its_imports(proc):
                return True
        except psutil.Error:
            continue
    return False


def past_its_imports(proc: psutil.Process) -> bool:
    """Whether a job's script has loaded zarr's codecs (numcodecs): past Snakemake's preamble
    and the script's first line."""
    try:
        return any("numcodecs" in m.path for m in proc.memory_maps())
    except psutil.Error:
        return False


@pytest.mark.workflow
def test_ctrl_c_prints_one_line_per_interrupted_job(tmp_path):
    config = yaml.safe_load((REPO / "config/test.yaml").read_text())
    config.update(run="ctrl-c", tissues=["lung"], shards=[1], remote={"enabled": False})
    config["analysis"]["read"] = "local"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    # One job at a time: a job that Ctrl-C meets inside Snakemake's own preamble (before its
    # script's first line) would still print Snakemake's traceback.
    args = [*SNAKEMAKE, "--directory", str(tmp_path), "--cores", "1", "--configfile", "c.yaml"]
    out = tmp_path / "out.txt"
    with out.open("w") as sink:
        run = subprocess.Popen(args, stdout=sink, stderr=sink, cwd=tmp_path, start_new_session=True)
        wait_for(lambda: a_job_past_its_imports(run) or run.poll() is not None, 600, "a job")
        assert run.poll() is None, "the run ended before a job was caught past its imports"
        os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
        assert run.wait(timeout=300) != 0
    text = out.read_text()
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text[-5000:]
    failed = [line.split()[-1].rstrip(":") for line in text.splitlines() if "Error in rule" in line]
    # Snakemake's own "Terminating processes..." may end without a newline before the job's
    marker = "chunkatlas: interrupted: "
    lines = [line[line.index(marker) :] for line in text.splitlines() if marker in line]
    assert failed and [line.split()[3] for line in lines] == failed, text[-5000:]
    assert "(tissue=lung" in lines[0] or lines[0].endswith(failed[0])  # names its job
    done = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]  # and a rerun finishes the run


#: A Snakemake job's step as a script runs it (:func:`chunkatlas.workflow.run_job`): the
#: store it writes beside the record it declares, and how it ends (argv: store, record, log, how).
STEP_JOB = """
import sys
from pathlib import Path
from types import SimpleNamespace

from chunkatlas.errors import ChunkatlasError
from chunkatlas.store import atomic_directory
from chunkatlas.workflow import run_job

store, record, log, how = sys.argv[1:]


class Named(SimpleNamespace):
    def keys(self):
        return vars(self).keys()

    def get(self, key, default=None):
        return getattr(self, key, default)


job = SimpleNamespace(log=[log], params=Named(), output=Named(objects=record))


def action():
    if how == "fails-before-writing":
        raise ChunkatlasError("n_top_genes 5000 must be between 1 and n_vars (3000)")
    with atomic_directory(store) as tmp:
        tmp.mkdir()
        (tmp / "values").write_text("new")
    if how == "fails-after-writing":
        raise ChunkatlasError("the step failed after its store was written")


run_job(job, action)
"""


def store_files(store: Path) -> dict[str, str]:
    return {str(p.relative_to(store)): p.read_text() for p in store.rglob("*") if p.is_file()}


@pytest.mark.parametrize("how", ["fails-before-writing", "fails-after-writing"])
def test_a_failed_step_keeps_the_previous_good_store(tmp_path, how):
    """The store a step replaces stays, intact, when the step fails; it goes only when the
    step succeeds.  A step killed outright leaves it aside, and the next step puts it back."""
    store, record = tmp_path / "hvg_pca.zarr", tmp_path / "hvg_pca.objects.json"
    (store / "obsm").mkdir(parents=True)
    (store / "zarr.json").write_text("old metadata")
    (store / "obsm" / "X_pca").write_text("old values")
    before = store_files(store)

    def step(ending: str) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-c", STEP_JOB, str(store), str(record)]
        return subprocess.run(
            [*argv, str(tmp_path / "job.log"), ending], capture_output=True, text=True, timeout=120
        )

    failed = step(how)
    assert failed.returncode == 1
    assert failed.stderr.startswith("chunkatlas: error: ")
    assert store_files(store) == before  # the previous store, intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hvg_pca.zarr", "job.log"]
    # a step killed with its store aside: the next one puts it back before it starts
    os.rename(store, tmp_path / f".hvg_pca.zarr.previous-{os.getpid()}")
    assert step(how).returncode == 1
    assert store_files(store) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hvg_pca.zarr", "job.log"]
    done = step("succeeds")
    assert done.returncode == 0, done.stderr
    assert store_files(store) == {"values": "new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["hvg_pca.zarr", "hvg_pca.objects.json", "job.log"]
    )
