"""The workflow and the Dask workers on a real SLURM cluster: one node, on loopback, started here.

The daemons (munged, slurmctld, slurmd; Debian packages, installed by .ci/install-slurm.sh) run
as root with their own slurm.conf, munge key, ports and state in a temporary folder, and are
stopped at the end. Results must equal those of the local run, chunk for chunk.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import yaml

from chunkatlas.analysis import ClusterSettings, dask_client
from chunkatlas.analysis._client import SlurmOptions, check_cluster, dask_environment
from chunkatlas.config import load_schema, validate_config
from chunkatlas.errors import ChunkatlasError
from chunkatlas.study._server_process import stop_process

from ..support.workflow_runs import (
    REPO,
    SNAKEMAKE,
    geometries,
    job_counts,
    one_tissue_config,
    store_dir,
    stores,
)

pytestmark = [pytest.mark.servers, pytest.mark.workflow]

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "srun", "scontrol", "sinfo", "scancel")
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+?)\)\.")
HEADROOM_MB = 4096


def local_rules() -> set[str]:
    """Rules marked `localrule: True` in workflow/rules, and the target rule `all`."""
    local = {"all"}
    for path in (REPO / "workflow/rules").glob("*.smk"):
        parts = re.split(r"^\s*rule (\w+):", path.read_text(), flags=re.M)
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if re.search(r"^\s*localrule:\s*True", body, flags=re.M):
                local.add(name)
    return local


def find(program: str) -> str | None:
    """The program on PATH or in /usr/sbin (daemons are there, often not on PATH)."""
    return shutil.which(program) or shutil.which(program, path="/usr/sbin:/usr/bin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def real_memory_mb() -> int:
    """The node's RealMemory: the machine's memory less headroom for the rest of it."""
    total_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return max(1024, total_kb // 1024 - HEADROOM_MB)


def cgroup_plugin() -> str:
    """cgroup/v2 on a pure cgroup-v2 host; cgroup/v1 where v1 hierarchies are mounted (hybrid)."""
    lines = Path("/proc/self/cgroup").read_text().split()
    return (
        "cgroup/v2" if lines == [line for line in lines if line.startswith("0::")] else "cgroup/v1"
    )


def slurm_conf(base: Path, node: str) -> str:
    host = socket.gethostname().split(".")[0]
    return f"""\
ClusterName=chunkatlas
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
AuthType=auth/munge
AuthInfo=socket={base}/munge/munge.sock
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={base}/state
SlurmdSpoolDir={base}/spool
SlurmctldPidFile={base}/slurmctld.pid
SlurmdPidFile={base}/slurmd.pid
SlurmctldLogFile={base}/log/slurmctld.log
SlurmdLogFile={base}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=900
ReturnToService=2
MpiDefault=none
NodeName={node} NodeAddr=127.0.0.1 NodeHostname={host} CPUs=2 RealMemory={real_memory_mb()} \
State=UNKNOWN
PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


@dataclass
class Slurm:
    """A running one-node SLURM cluster: its config, logs and the environment that reaches it."""

    base: Path
    env: dict[str, str]

    def run(self, *args: str, timeout: int = 60) -> subprocess.CompletedProcess:
        return subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=timeout)

    def job_state(self, job_id: str) -> str:
        shown = self.run("scontrol", "show", "job", job_id).stdout
        found = re.search(r"JobState=(\w+)", shown)
        return found[1] if found else "UNKNOWN"

    def active_jobs(self) -> list[str]:
        return self.run("squeue", "-h", "-t", "PD,R,CG", "-o", "%i").stdout.split()

    def logs(self) -> str:
        return "\n".join(
            f"== {p.name}\n{p.read_text()[-3000:]}"
            for p in sorted((self.base / "log").glob("*.log"))
        )


def unavailable() -> str | None:
    """Why this machine cannot start the cluster, or None."""
    missing = [p for p in (*DAEMONS, *CLIENTS) if find(p) is None]
    if missing:
        return (
            f"SLURM not installed (no {', '.join(missing)}): "
            "run `bash .ci/install-slurm.sh` (Debian: slurmctld slurmd slurm-client munge)"
        )
    if os.geteuid() != 0:
        return "slurmd of the one-node test cluster must run as root"
    return None


def wait_for(condition, seconds: float, what: str, details=lambda: "") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:g} s waiting for {what}\n{details()}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory) -> Iterator[Slurm]:
    """munged, slurmctld and slurmd in the foreground, a partition `debug` of one node."""
    reason = unavailable()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the SLURM tests: {reason}")
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("slurm")
    for sub in ("munge", "state", "spool", "log", "bin"):
        (base / sub).mkdir()
    key = base / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    node = "chunkatlas0"
    conf = base / "slurm.conf"
    conf.write_text(slurm_conf(base, node))
    (base / "cgroup.conf").write_text(f"CgroupPlugin={cgroup_plugin()}\nIgnoreSystemd=yes\n")
    # The jobstep plugin drops every SLURM_* variable (SLURM_CONF too) before its nested srun
    # inside a job; a real site's srun finds /etc/slurm/slurm.conf. This srun finds ours.
    srun = base / "bin" / "srun"
    srun.write_text(f'#!/bin/sh\nSLURM_CONF={conf} exec {find("srun")} "$@"\n')
    srun.chmod(0o755)
    # Jobs inherit this environment (sbatch --export=ALL): this Python's bin first on PATH.
    path = os.pathsep.join(
        [str(base / "bin"), str(Path(sys.executable).parent), os.environ.get("PATH", "")]
    )
    env = {**os.environ, "SLURM_CONF": str(conf), "PATH": path}
    commands = [
        [
            find("munged"),
            "--foreground",
            "--force",
            f"--key-file={key}",
            f"--socket={base}/munge/munge.sock",
            f"--pid-file={base}/munge/munged.pid",
            f"--log-file={base}/log/munged.log",
            f"--seed-file={base}/munge/seed",
        ],
        [find("slurmctld"), "-D"],
        [find("slurmd"), "-D", "-N", node],
    ]
    cluster = Slurm(base, env)
    started: list[subprocess.Popen] = []
    try:
        for command in commands:
            started.append(
                subprocess.Popen(
                    command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            )
            if command[0].endswith("munged"):
                wait_for((base / "munge" / "munge.sock").exists, 30, "munged", cluster.logs)
        wait_for(
            lambda: cluster.run("sinfo", "-h", "-o", "%T").stdout.strip() == "idle",
            60,
            "the node to be idle",
            cluster.logs,
        )
        yield cluster
    finally:
        if started:
            try:
                cluster.run("scancel", "--user", "root")
                wait_for(lambda: not cluster.active_jobs(), 60, "jobs to end")
            except (AssertionError, subprocess.SubprocessError):
                pass  # the daemons are stopped below all the same
        for process in reversed(started):
            stop_process(process, 20)


def chunk_files(store: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()
    }


def assert_same_analysis(ours: ad.AnnData, reference: ad.AnnData) -> None:
    """Identical HVGs and PCA coordinates; loadings equal to the last bits of float64."""
    np.testing.assert_array_equal(ours.var["highly_variable"], reference.var["highly_variable"])
    np.testing.assert_array_equal(ours.obsm["X_pca"], reference.obsm["X_pca"])
    np.testing.assert_allclose(ours.varm["PCs"], reference.varm["PCs"], rtol=0, atol=1e-12)


def test_jobs_find_this_python_and_its_commands(slurm, tmp_path):
    out = tmp_path / "env.txt"
    done = slurm.run(
        "sbatch",
        "--wait",
        "--export=ALL",
        "-o",
        str(out),
        "--wrap",
        "for c in python snakemake dask chunkatlas; do command -v $c; done; "
        "python -c 'import chunkatlas, dask_jobqueue; print(chunkatlas.__file__)'",
        timeout=120,
    )
    assert done.returncode == 0, done.stderr + slurm.logs()
    found = out.read_text().split()
    here = Path(sys.executable).parent
    assert found[:4] == [str(here / name) for name in ("python", "snakemake", "dask", "chunkatlas")]
    assert found[4] == str(REPO / "src" / "chunkatlas" / "__init__.py")


def test_workflow_on_slurm_equals_the_local_run(slurm, test_run, tmp_path):
    workdir, _ = test_run
    config_path, config = one_tissue_config(tmp_path)  # its stores are the local run's
    start = time.monotonic()
    done = subprocess.run(
        [
            *SNAKEMAKE,
            "--directory",
            str(tmp_path),
            "--profile",
            str(REPO / "profiles/slurm"),
            "--configfile",
            str(config_path),
            # polling every few seconds instead of the profile's 40 s keeps the test short
            "--slurm-init-seconds-before-status-checks",
            "2",
        ],
        env=slurm.env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:] + slurm.logs()
    print(f"SLURM run of config/test.yaml's first tissue: {time.monotonic() - start:.0f} s")

    submitted = SUBMITTED.findall(output)
    rules = Counter(
        Path(log).relative_to(tmp_path / ".snakemake/slurm_logs").parts[0]
        for _, _, log in submitted
    )
    local = local_rules()
    assert {"consolidate", "plot_pca", "summary"} <= local
    counts = job_counts(output)
    # Every job of every other rule, and only those, went to SLURM.
    assert rules == {f"rule_{rule}": n for rule, n in counts.items() if rule not in local}
    # fetch and remote run once per tissue (remote: all the tissue's stores), rechunk per store
    assert rules["rule_fetch"] == rules["rule_remote"] == len(config["tissues"])
    assert rules["rule_rechunk"] == len(list(stores(config)))
    assert rules["rule_analyze"] == len(list(geometries(config)))
    job_ids = [job_id for _, job_id, _ in submitted]
    assert len(set(job_ids)) == len(job_ids)
    for job_id in job_ids:  # slurmctld remembers them for MinJobAge = 900 s
        assert slurm.job_state(job_id) == "COMPLETED", job_id
    for _, job_id, log in submitted:  # the plugin kept every job's log (the profile says so)
        assert Path(log).name == f"{job_id}.log"
        assert "Finished jobid: 0" in Path(log).read_text(), log
    analyze_logs = list((tmp_path / "results" / config["run"] / "logs/analyze").rglob("*.log"))
    assert len(analyze_logs) == len(list(geometries(config)))
    for log in analyze_logs:
        assert "Dask LocalCluster: 2 workers" in log.read_text()

    for tissue, orientation, chunk, shard, codec in geometries(config):
        here = Path("results") / config["run"] / store_dir(tissue, orientation, chunk, shard, codec)
        assert chunk_files(tmp_path / here / "store.zarr") == chunk_files(
            workdir / here / "store.zarr"
        )
        assert_same_analysis(
            ad.read_zarr(tmp_path / here / "hvg_pca.zarr"),
            ad.read_zarr(workdir / here / "hvg_pca.zarr"),
        )


def squeue_while(slurm: Slurm, seen: list[str]) -> None:
    """Record the running jobs named like dask-jobqueue's workers."""
    listed = slurm.run("squeue", "-h", "-t", "R", "-o", "%i %j").stdout.splitlines()
    seen.extend(line for line in listed if line.split()[1].startswith("dask-worker"))


def test_dask_workers_as_slurm_jobs_equal_the_local_cluster(
    slurm, consolidated, tmp_path, monkeypatch
):
    from chunkatlas.analysis import AnalysisParams, fused, hvg_pca
    from chunkatlas.store import read_dask_backed

    store, _ = consolidated
    params = AnalysisParams(flavor="seurat", n_top_genes=150, n_comps=20, engine="scanpy")
    for name, value in slurm.env.items():  # this process submits the worker jobs
        monkeypatch.setenv(name, value)
    options = {
        "queue": "debug",
        "log_directory": str(tmp_path / "worker-logs"),
        "start_timeout": 120,
    }
    results = {}
    seen: list[str] = []
    for cluster in ("local", "slurm"):
        with dask_client(
            ClusterSettings(workers=2, cluster=cluster, slurm=SlurmOptions.from_mapping(options))
        ) as client:
            if cluster == "slurm":
                squeue_while(slurm, seen)
                assert len(client.scheduler_info()["workers"]) == 2
            scanpy_result = hvg_pca(read_dask_backed(store, 200), params)
            fused_result = fused.run_fused(
                store,
                tmp_path / f"{cluster}.zarr",
                client=client,
                task_cells=200,
                flavor="seurat",
                n_top_genes=150,
                n_comps=20,
            )
        results[cluster] = (scanpy_result, ad.read_zarr(tmp_path / f"{cluster}.zarr"), fused_result)
    assert len(seen) == 2, seen  # two worker jobs, running while the analysis ran
    worker_jobs = [line.split()[0] for line in seen]
    wait_for(
        lambda: not set(worker_jobs) & set(slurm.active_jobs()),
        60,
        "the worker jobs to be cancelled when the client closed",
    )
    assert sorted(p.name for p in (tmp_path / "worker-logs").iterdir()) == sorted(
        f"dask-worker-{job}.{ext}" for job in worker_jobs for ext in ("err", "out")
    )
    for engine, ours, reference in zip(
        ("scanpy", "fused"), results["slurm"][:2], results["local"][:2], strict=False
    ):
        print(f"checking engine {engine}")
        assert_same_analysis(ours, reference)


def test_slurm_options_from_the_config(tmp_path):
    schema = load_schema()
    config = yaml.safe_load((REPO / "config/test.yaml").read_text())
    filled = validate_config(config, schema)["dask"]
    assert filled["cluster"] == "local"
    options = SlurmOptions.from_mapping(filled["slurm"])
    assert options == SlurmOptions(log_directory="results/logs/dask-workers", start_timeout=600)
    config["dask"].update(
        cluster="slurm",
        slurm={"queue": "short", "memory": "4GB", "job_extra_directives": ["--qos=low"]},
    )
    options = SlurmOptions.from_mapping(validate_config(config, schema)["dask"]["slurm"])
    assert (options.queue, options.memory, options.job_extra_directives) == (
        "short",
        "4GB",
        ("--qos=low",),
    )
    config["dask"]["cluster"] = "kubernetes"
    with pytest.raises(ChunkatlasError, match="dask.cluster: 'kubernetes' is not one of"):
        validate_config(config, schema)
    with pytest.raises(ChunkatlasError, match="dask.slurm option 'partition' is not one of"):
        SlurmOptions.from_mapping({"partition": "debug"})


def test_slurm_cluster_errors_name_the_bad_value(monkeypatch, tmp_path):
    with pytest.raises(ChunkatlasError, match="dask.cluster 'pbs' is not one of local, slurm"):
        check_cluster("pbs", None)
    with pytest.raises(ChunkatlasError, match="scheduler_address 'tcp://h:1' is allowed only"):
        check_cluster("slurm", "tcp://h:1")
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    with pytest.raises(ChunkatlasError, match="needs SLURM's sbatch on PATH"):
        with dask_client(ClusterSettings(workers=2, cluster="slurm")):
            pass


def test_worker_jobs_get_the_same_dask_settings():
    lines = dask_environment(
        {
            "distributed.worker.memory.spill": False,
            "distributed.admin.large-graph-warning-threshold": "10MB",
        }
    )
    assert lines == [
        "export DASK_DISTRIBUTED__WORKER__MEMORY__SPILL=False",
        "export DASK_DISTRIBUTED__ADMIN__LARGE_GRAPH_WARNING_THRESHOLD=10MB",
    ]
