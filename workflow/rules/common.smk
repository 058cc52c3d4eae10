import itertools
import os
import re
import sys
from dataclasses import asdict
from pathlib import Path

from chunkatlas.errors import ChunkatlasError
from chunkatlas._schema import load_schema
from chunkatlas.ingest import SourceUnreachable
from chunkatlas.settings import Settings
from chunkatlas.steps import check_run, picked_layouts
from chunkatlas.store import read_objects_record
from chunkatlas.workflow import (
    PER_TISSUE_STEPS,
    close_run_clusters,
    open_run_clusters,
    STEPS,
    Untracked,
    bucket_of_storage_settings,
    delete_stores,
    forget_lost_stores,
    record_of,
)

try:
    # The config parsed once (values given with --config arrive as strings and are read as
    # typed; every default from the schema): the rules take their settings from it.
    SETTINGS = Settings.load(config)
    TISSUES = SETTINGS.folders  # folder name -> tissue name
    if workflow.is_main_process:  # not again in each job a cluster runs
        # Every check the source's metadata allows, before any job: its tissues, columns,
        # layer or raw, genes, counts (a sample of X), and the analysis's parameters on them.
        try:
            check_run(SETTINGS)
        except SourceUnreachable as err:  # a dry run plans offline (e.g. the Census's)
            _dry = re.compile(r"--dry-?run|--just-print|-[A-Za-z]*n[A-Za-z]*")
            if not any(_dry.fullmatch(arg) for arg in sys.argv[1:]):
                raise
            print(f"chunkatlas: warning: {err}; not checked in this dry run", file=sys.stderr)
except ChunkatlasError as err:
    sys.exit(f"chunkatlas: error: {err}")
config.update(SETTINGS.config)


def run_bucket():
    """The object store that keeps every output when Snakemake runs with
    --default-storage-provider s3 (cloud executors: with --shared-fs-usage none), else None."""
    chosen = workflow.storage_settings
    if chosen.default_storage_provider is None:
        return None
    if chosen.default_storage_provider != "s3":
        sys.exit(
            f"chunkatlas: error: --default-storage-provider "
            f"{chosen.default_storage_provider!r} is not supported: use s3"
        )
    settings = workflow.storage_registry.default_storage_provider.settings
    bucket = bucket_of_storage_settings(
        chosen.default_storage_prefix,
        endpoint_url=settings.endpoint_url,
        region=settings.region,
        access_key=settings.access_key,
        secret_key=settings.secret_key,
        token=settings.token,
    )
    if not bucket.has_credentials():  # else every output's existence check fails at once
        sys.exit(
            f"chunkatlas: error: no S3 credentials for {bucket.prefix}: set "
            "SNAKEMAKE_STORAGE_S3_ACCESS_KEY and SNAKEMAKE_STORAGE_S3_SECRET_KEY (or the AWS "
            "variables, ~/.aws/credentials, or run where a role provides them)"
        )
    return bucket


BUCKET = run_bucket()


# Chunk sizes per orientation: cells per chunk of cell-major stores, genes of gene-major ones.
CHUNKS = {"cells": sorted(config["chunks"]), "genes": sorted(config["gene_chunks"])}
ORIENTATIONS = config["orientations"]
# Gene-major sparse stores (CSC) are measured, not analysed: analysis reads cell-major stores.
ANALYSED = ["cells", "genes"] if config["source"]["dense"] else ["cells"]
# Each run (config key `run`) has its own results folder: configs never touch each other's outputs.
RESULTS = SETTINGS.results

# Records true to the stores on disk (a rule declares a store's completion record, never the
# store, which Snakemake cannot see): a store deleted by hand runs its job again, and
# --delete-all-output removes the run's stores with their records.
if BUCKET is None and workflow.is_main_process:
    if "--delete-all-output" in sys.argv:
        _dry = any(arg in ("-n", "--dry-run", "--dryrun") for arg in sys.argv)
        for _store in delete_stores(RESULTS, dry_run=_dry):
            print(f"{'would delete' if _dry else 'deleting'} store {_store}", file=sys.stderr)
    else:
        for _store in forget_lost_stores(RESULTS):
            print(f"chunkatlas: {_store} is gone: its job runs again", file=sys.stderr)


def out(path):
    """``path`` inside this run's results folder."""
    return f"{RESULTS}/{path}"


REPORT_DESCRIPTION = "workflow/report/workflow.rst"  # what a run does (relative to the Snakefile)


def report_first_page():
    """The report's first page: once the run has one, the answer and what the run did (written
    by summary); before that, what the run does."""
    page = out("summary/first_page.rst")
    return os.path.abspath(page) if os.path.exists(page) else REPORT_DESCRIPTION


SHARDS = sorted(config["shards"])
CODECS = config["codecs"]
# Every codec preset: a store the judged model picks may use one the grid does not.
SCHEMA_CODECS = load_schema()["properties"]["codecs"]["items"]["enum"]
# One store per tissue x geometry; its folder names every part of the geometry: cells-500 holds
# 500 cells per chunk, genes-50 50 genes per chunk.
POINT = "{tissue}/{orientation}-{chunk}-shard-{shard}-{codec}"
GRID = out(POINT)


wildcard_constraints:
    tissue="|".join(map(re.escape, TISSUES)),
    orientation="cells|genes",
    chunk=r"[1-9]\d*",
    shard=r"[1-9]\d*",
    codec="|".join(map(re.escape, SCHEMA_CODECS)),


def benchmark_file(step, wildcards=POINT):
    """Where a step's job records its seconds and memory (Snakemake's benchmark)."""
    return out(f"benchmarks/{step}/{wildcards}.tsv")


def run_bucket_param():
    """The run's bucket for a job that moves stores (untracked: its keys never reach
    ``.snakemake/``), None when outputs stay on disk: each job finds its stores beside the
    completion records it declares (:func:`chunkatlas.workflow.store_in`)."""
    return Untracked(BUCKET)


def local_copy(path):
    """Where a job finds the input ``path`` on its own disk: with outputs in an object store,
    the copy Snakemake retrieved (for files named in params rather than input)."""
    if BUCKET is None:
        return path
    provider = workflow.storage_registry.default_storage_provider
    return str(provider.object(BUCKET.url(path)).local_path())


def geometries():
    """Every store geometry of the grid: dicts of orientation, chunk, shard and codec."""
    return [
        dict(orientation=orientation, chunk=chunk, shard=shard, codec=codec)
        for orientation in ORIENTATIONS
        for chunk, shard, codec in itertools.product(CHUNKS[orientation], SHARDS, CODECS)
    ]


def point_outputs(geometry):
    """The outputs of one store geometry (folder-relative), as the default target wants them."""
    outputs = ["store.manifest.json"]
    if geometry["orientation"] in ANALYSED:
        outputs += ["hvg_pca.objects.json", "pca.png"]
    if config["remote"]["enabled"]:
        outputs.append("remote.tsv")
    return outputs


def geometry_folder(geometry):
    """A store geometry's folder name inside its tissue's folder (:data:`POINT`)."""
    return POINT.split("/", 1)[1].format(**geometry)


def remote_folders():
    """The geometry folders whose stores the remote study measures (all, when it is on)."""
    return [geometry_folder(g) for g in geometries()] if config["remote"]["enabled"] else []


def tissue_files(tissue, name):
    """``name`` in each measured geometry folder of ``tissue``, in :func:`remote_folders`'s
    order (the remote job's stores and their manifests)."""
    return [f"{RESULTS}/{tissue}/{folder}/{name}" for folder in remote_folders()]


def grid_outputs():
    """Every per-tissue x geometry output of the default target."""
    return [
        f"{GRID.format(tissue=tissue, **geometry)}/{name}"
        for tissue in TISSUES
        for geometry in geometries()
        for name in point_outputs(geometry)
    ]


def analysis_read():
    """Where analyze reads each store: "local", the backend with its server and network, or
    the run's bucket (outputs in an object store: stores are read there)."""
    if BUCKET is not None:
        return "s3 bucket"
    read = config["analysis"]["read"]
    if read == "local":
        return read
    remote = config["remote"]
    server = remote["server"] if read == "http" else "moto"
    return f"{read} {server}, {remote['latency_ms']} ms, {remote['bandwidth_mbps']} Mbit/s"


def config_hash():
    """The hash of the run's config, recorded in every manifest and result: not a re-run
    trigger (the provenance rule re-runs on a config change)."""
    return Untracked(SETTINGS.provenance()["config_hash"])


def cluster_settings(wildcards, threads, resources):
    """The Dask cluster of an analyze job: one worker per thread, the job's memory."""
    return Untracked(SETTINGS.dask.cluster(threads, resources.mem_mb))


def builds_demo_atlas():
    """Whether the source is the demo atlas, built by a rule (a real source, e.g. the Census,
    is not a workflow file)."""
    return SETTINGS.builds_demo_atlas


def get_fetch_source(wildcards):
    """The demo atlas's record, when the source is the demo atlas."""
    return [record_of(config["source"]["uri"])] if builds_demo_atlas() else []


def stores_mb(input):
    """MB of the stores whose records the job takes as input (resources scale with the data);
    0 for a record not yet made (a dry run)."""
    total = 0
    for record in input:
        if not str(record).endswith(".objects.json"):
            continue
        try:
            if BUCKET is None:
                total += read_objects_record(record)["bytes"]
            else:
                total += BUCKET.read_json(record.storage_object.query)["bytes"]
        except FileNotFoundError:
            pass
    return total / 1e6


def mem_mb(base, per_input_mb):
    """mem_mb from the size of the input stores, doubled on each retry."""

    def resource(wildcards, input, attempt):
        return int((base + per_input_mb * stores_mb(input)) * 2 ** (attempt - 1))

    return resource


def runtime(base_minutes):
    def resource(wildcards, attempt):
        return base_minutes * attempt

    return resource


def grid_points():
    """Files of every tissue x geometry, for the summary (no result where a store is measured
    but not analysed)."""
    points = []
    for folder, tissue in TISSUES.items():
        for geometry in geometries():
            where = dict(tissue=folder, **geometry)
            here = GRID.format(**where)
            outputs = point_outputs(geometry)
            analysed = "pca.png" in outputs
            points.append(
                dict(
                    tissue=tissue,
                    **geometry,
                    manifest=f"{here}/store.manifest.json",
                    result=f"{here}/hvg_pca.zarr" if analysed else None,
                    remote=f"{here}/remote.tsv" if "remote.tsv" in outputs else None,
                    benchmarks={
                        step: benchmark_file(
                            step, "{tissue}" if step in PER_TISSUE_STEPS else POINT
                        ).format(**where)
                        for step in STEPS
                        if (step != "analyze" or analysed)
                        and (step != "remote" or "remote.tsv" in outputs)
                    },
                    store_objects=record_of(f"{here}/store.zarr"),
                    result_objects=record_of(f"{here}/hvg_pca.zarr") if analysed else None,
                )
            )
    return points


# The files of a grid point the summary reads, beside its benchmarks and its result (a store:
# the summary job finds it beside its completion record, ``result_objects``).
POINT_FILES = ("manifest", "remote", "store_objects", "result_objects")


def point_files(point):
    """Every file of a grid point the summary reads."""
    return [point[key] for key in POINT_FILES if point[key]] + list(point["benchmarks"].values())


def local_points():
    """:func:`grid_points` with each file where the summary job finds it (:func:`local_copy`)."""
    return [
        {
            **point,
            **{key: local_copy(point[key]) for key in POINT_FILES if point[key]},
            "benchmarks": {step: local_copy(b) for step, b in point["benchmarks"].items()},
        }
        for point in grid_points()
    ]


def judged_model_file():
    """The cost model a judging run judges, as an input ([] for the reference model)."""
    model = config["judge"]["model"]
    return [model] if model else []


def picked_geometries(tissue):
    """The layouts the judged model picked for ``tissue`` that the grid does not hold (after
    the picks checkpoint)."""
    picks = checkpoints.picks.get(tissue=tissue).output.picks
    grid = geometries()
    return [g for g in picked_layouts(local_copy(picks)) if g not in grid]


def picked_folders(tissue):
    """The geometry folders of :func:`picked_geometries`."""
    return [geometry_folder(g) for g in picked_geometries(tissue)]


def picked_files(tissue, name):
    """``name`` in each folder of :func:`picked_folders`."""
    return [f"{RESULTS}/{tissue}/{folder}/{name}" for folder in picked_folders(tissue)]


def judge_outputs():
    """The judgement of each tissue, when the run judges a cost model."""
    if not config["judge"]["enabled"]:
        return []
    return [out(f"{tissue}/judge/judgement.md") for tissue in TISSUES]
