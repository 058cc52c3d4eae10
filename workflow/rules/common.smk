import itertools
import os
import re
import sys
from dataclasses import asdict

from chunkatlas.analysis._analyze import AnalysisParams
from chunkatlas.config import (
    check_source,
    coerce_to_schema,
    load_schema,
    tissue_folders,
    validate_config,
)
from chunkatlas.errors import ChunkatlasError
from chunkatlas.ingest._fetch import SourceSettings
from chunkatlas.report._provenance import run_record
from chunkatlas.analysis._shared_cluster import close_run, open_run

try:
    _schema = load_schema()
    # Values given with --config arrive as strings (chunks=[300] is ['300']): read them as typed.
    _validated = validate_config(coerce_to_schema(config, _schema), _schema)
    check_source(_validated)
    TISSUES = tissue_folders(_validated["tissues"])  # folder name -> tissue name
except ChunkatlasError as err:
    sys.exit(f"chunkatlas: error: {err}")
config.update(_validated)

CHUNKS = sorted(config["chunks"])
# Each run (config key `run`) has its own results folder: configs never touch each other's outputs.
RESULTS = f"results/{config['run']}"


def out(path):
    """``path`` inside this run's results folder."""
    return f"{RESULTS}/{path}"


SHARDS = sorted(config["shards"])
CODECS = config["codecs"]
# One store per tissue x geometry; its folder names every part of the geometry.
POINT = "{tissue}/chunks-{chunk}-shard-{shard}-{codec}"
GRID = out(POINT)


wildcard_constraints:
    tissue="|".join(map(re.escape, TISSUES)),
    chunk=r"[1-9]\d*",
    shard=r"[1-9]\d*",
    codec="|".join(map(re.escape, CODECS)),


def grid_outputs():
    """Every per-tissue x chunk output of the default target."""
    outputs = [
        f"{GRID}/store.manifest.json",
        f"{GRID}/hvg_pca.zarr",
        f"{GRID}/pca.png",
    ]
    if config["remote"]["enabled"]:
        outputs.append(f"{GRID}/remote.tsv")
    return expand(outputs, tissue=TISSUES, chunk=CHUNKS, shard=SHARDS, codec=CODECS)


def analysis_rows(wildcards):
    """Cells per Dask task: one stored object (a chunk, or a shard of several), unless chunks
    are gene columns of dense X.  A task within a shard would read the shard's index again."""
    if config["rechunk"]["dense_axis"] == "var":
        return config["source"]["fetch_chunk_rows"]
    return int(wildcards.chunk) * int(wildcards.shard)


def analysis_read():
    """Where analyze reads each store: "local", or the backend with its server and network."""
    read = config["analysis"]["read"]
    if read == "local":
        return read
    remote = config["remote"]
    server = remote["server"] if read == "http" else "moto"
    return f"{read} {server}, {remote['latency_ms']} ms, {remote['bandwidth_mbps']} Mbit/s"


def get_fetch_source(wildcards):
    """The demo atlas is built by a rule; a real source (Census) is not a workflow file."""
    if "demo_atlas" in config and config["source"]["kind"] == "soma":
        return [config["source"]["uri"]]
    return []


def tree_mb(paths):
    """Size in MB of files and directory trees (resources scale with the data)."""
    total = 0
    for path in paths:
        if os.path.isdir(path):
            for root, _, names in os.walk(path):
                total += sum(os.path.getsize(os.path.join(root, n)) for n in names)
        elif os.path.exists(path):
            total += os.path.getsize(path)
    return total / 1e6


def mem_mb(base, per_input_mb):
    """mem_mb from the input size, doubled on each retry."""

    def resource(wildcards, input, attempt):
        return int((base + per_input_mb * tree_mb(input)) * 2 ** (attempt - 1))

    return resource


def runtime(base_minutes):
    def resource(wildcards, attempt):
        return base_minutes * attempt

    return resource


def grid_points():
    """Files of every tissue x geometry, for the summary."""
    points = []
    for folder, tissue in TISSUES.items():
        for chunk, shard, codec in itertools.product(CHUNKS, SHARDS, CODECS):
            where = dict(tissue=folder, chunk=chunk, shard=shard, codec=codec)
            here = GRID.format(**where)
            points.append(
                dict(
                    tissue=tissue,
                    chunk=chunk,
                    shard=shard,
                    codec=codec,
                    manifest=f"{here}/store.manifest.json",
                    result=f"{here}/hvg_pca.zarr",
                    remote=f"{here}/remote.tsv" if config["remote"]["enabled"] else None,
                    dense_axis=config["rechunk"]["dense_axis"],
                    benchmarks={
                        step: str(getattr(rules, step).benchmark).format(**where)
                        for step in ("fetch", "rechunk", "consolidate", "analyze", "remote")
                    },
                )
            )
    return points
