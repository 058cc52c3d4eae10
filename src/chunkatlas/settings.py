"""A run's settings, typed: a validated config parsed once into the types the steps take.

:func:`chunkatlas.config.validate_config` fills in every default from the schema, so nothing
here has a default of its own: every field is required, and a key the schema adds without a
field here fails :meth:`Settings.from_config` (a missing key is a KeyError, never a fallback).
The domain packages (store, ingest, rewrite, analysis, study, model, report) never see the
config: only this module reads it.

A command of the CLI validates only its own sections; it builds the pieces it needs with the
section functions below (:func:`source_settings`, :func:`analysis_params`, ...), which
:meth:`Settings.from_config` composes.

The types of the domain packages are imported when a config is parsed, not with this module:
importing it costs nothing (the CLI's parser, a Snakefile's first line).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

from chunkatlas._version import __version__
from chunkatlas.config import (
    RESULTS,
    coerce_to_schema,
    config_hash,
    load_schema,
    tissue_folders,
    validate_config,
)
from chunkatlas.errors import ChunkatlasError

if TYPE_CHECKING:
    from chunkatlas.analysis import AnalysisParams, ClusterSettings, SlurmOptions
    from chunkatlas.ingest import SourceSettings
    from chunkatlas.ingest.demo import DemoSpec
    from chunkatlas.store import RemoteSettings
    from chunkatlas.study import Network


@dataclass(frozen=True)
class Grid:
    """The store geometries of a run: each orientation × its chunk sizes × shards × codecs."""

    orientations: tuple[str, ...]
    chunks: tuple[int, ...]  # cells per chunk of cell-major stores
    gene_chunks: tuple[int, ...]  # genes per chunk of gene-major stores
    shards: tuple[int, ...]  # chunks per shard (1: unsharded)
    codecs: tuple[str, ...]

    def chunks_of(self, orientation: str) -> tuple[int, ...]:
        """The chunk sizes of ``orientation``'s stores: cells (``cells``) or genes per chunk."""
        return self.chunks if orientation == "cells" else self.gene_chunks


@dataclass(frozen=True)
class DaskSettings:
    """The config's ``dask`` section: where analyses run (``kind``: the key ``dask.cluster``,
    local or slurm), and what each worker gets; :meth:`cluster` is one analysis's cluster."""

    scheduler_address: str | None
    connect_timeout: float
    large_graph_warning_threshold: str
    memory_mb_per_worker: int
    threads_per_worker: int
    shared_cluster: bool
    kind: str
    slurm: SlurmOptions

    def cluster(self, workers: int, memory_mb: int | None = None) -> ClusterSettings:
        """The cluster of one analysis: ``workers`` Dask workers sharing ``memory_mb`` (None:
        ``memory_mb_per_worker`` each; the workflow gives the analyze job's ``mem_mb``)."""
        from chunkatlas.analysis import ClusterSettings

        return ClusterSettings(
            workers=workers,
            memory_mb=workers * self.memory_mb_per_worker if memory_mb is None else memory_mb,
            cluster=self.kind,
            scheduler_address=self.scheduler_address,
            connect_timeout=self.connect_timeout,
            large_graph_warning_threshold=self.large_graph_warning_threshold,
            slurm=self.slurm,
            threads_per_worker=self.threads_per_worker,
            shared_cluster=self.shared_cluster,
        )


@dataclass(frozen=True)
class Judge:
    """The config's ``judge`` section: whether the run judges a cost model (``model``: a study
    run's ``cost_model.json``, None: the reference model) by the layouts it picks."""

    enabled: bool
    model: str | None


@dataclass(frozen=True)
class RemoteStudy:
    """The config's ``remote`` section: whether and how each store is served and measured
    (``server``, ``backends``, ``repeats``), over what emulated network, and how hard a remote
    read tries (``attempts``, ``timeout_seconds``)."""

    enabled: bool
    server: str
    repeats: int
    backends: tuple[str, ...]
    latency_ms: float
    bandwidth_mbps: float | None
    attempts: int
    timeout_seconds: float

    @property
    def network(self) -> Network:
        """The emulated network between the loopback servers and their readers."""
        from chunkatlas.study import Network

        return Network(self.latency_ms, self.bandwidth_mbps)


@dataclass(frozen=True)
class Settings:
    """Everything a run does, typed, from one validated config (:meth:`from_config`).

    ``source_remote`` and ``analysis_remote`` are the retries and timeout of remote reads with
    the storage options of ``source`` (the source fetched) and of ``analysis`` (a store
    analysed at a URL); ``network`` is the emulated network of ``remote``; ``folders`` maps
    each tissue's results folder to the tissue; ``config`` is the validated config itself (its
    record, :meth:`record`, goes beside the results).
    """

    run: str
    source: SourceSettings
    demo: DemoSpec | None
    tissues: tuple[str, ...]
    folders: Mapping[str, str]
    grid: Grid
    analysis: AnalysisParams
    label_key: str  # the obs column that colours the PCA plot
    analysis_read: str  # where analyze reads each store: local, http or s3
    remote: RemoteStudy
    judge: Judge
    source_remote: RemoteSettings
    analysis_remote: RemoteSettings
    network: Network
    dask: DaskSettings
    zarr_format: int
    config: Mapping = field(repr=False, compare=False)

    @classmethod
    def from_config(cls, config: Mapping) -> Settings:
        """The settings of a config that :func:`~chunkatlas.config.validate_config` returned
        (every default filled in).

        Raises
        ------
        ChunkatlasError
            One line for what only the typed settings tell: two tissues that would share a
            folder, an HVG flavor that cannot run on normalised data.
        """
        study = remote_study(config)
        judged = Judge(**config["judge"])
        if judged.enabled and not study.enabled:
            raise ChunkatlasError(
                "config judge.enabled: true needs remote.enabled: true (the picks are judged "
                "by their measured reads)"
            )
        return cls(
            run=config["run"],
            source=source_settings(config),
            demo=demo_spec(config),
            tissues=tuple(config["tissues"]),
            folders=tissue_folders(list(config["tissues"])),
            grid=grid(config),
            analysis=analysis_params(config),
            label_key=config["analysis"]["label_key"],
            analysis_read=config["analysis"]["read"],
            remote=study,
            judge=judged,
            source_remote=remote_settings(config, "source"),
            analysis_remote=remote_settings(config, "analysis"),
            network=study.network,
            dask=dask_settings(config),
            zarr_format=config["zarr_format"],
            config=copy.deepcopy(dict(config)),
        )

    @classmethod
    def load(cls, config: Mapping, schema: Mapping | None = None) -> Settings:
        """The settings of a config as given (values typed as text read as the schema's types,
        validated, defaults filled in): one line for every problem."""
        schema = load_schema() if schema is None else schema
        return cls.from_config(validate_config(coerce_to_schema(config, schema), schema))

    @property
    def results(self) -> str:
        """The run's results folder, ``results/RUN``."""
        return f"{RESULTS}/{self.run}"

    @property
    def builds_demo_atlas(self) -> bool:
        """Whether the source is the demo atlas, built by the run (a SOMA source at
        ``source.uri``, inside the run's folder)."""
        return self.demo is not None and self.source.kind == "soma"

    def provenance(self) -> dict:
        """The config as run (secrets masked), its hash and the chunkatlas version."""
        return run_provenance(self.config)


def source_settings(config: Mapping) -> SourceSettings:
    """The ``source`` section: where tissues are fetched from and how."""
    from chunkatlas.ingest import SourceSettings

    return SourceSettings(**config["source"])


def remote_settings(config: Mapping, section: str = "source") -> RemoteSettings:
    """The ``remote`` section's retries and timeout, with the ``storage_options`` of
    ``section`` (``source``: the source fetched; ``analysis``: a store analysed at a URL; none
    when the command's config has no such section)."""
    from chunkatlas.store import RemoteSettings

    return RemoteSettings(
        attempts=config["remote"]["attempts"],
        timeout_seconds=config["remote"]["timeout_seconds"],
        storage_options=config[section]["storage_options"] if section in config else {},
    )


def analysis_params(config: Mapping) -> AnalysisParams:
    """The ``analysis`` section's parameters of the computation (not ``label_key``, ``read``
    or ``storage_options``: what is drawn and where the store is read)."""
    from chunkatlas.analysis import AnalysisParams, normalized_flavor_problem

    section = config["analysis"]
    params = AnalysisParams(**{f.name: section[f.name] for f in fields(AnalysisParams)})
    problem = normalized_flavor_problem(params.flavor, params.normalized)
    if problem:
        raise ChunkatlasError(f"config analysis.flavor: {problem}")
    return params


def dask_settings(config: Mapping) -> DaskSettings:
    """The ``dask`` section."""
    from chunkatlas.analysis import SlurmOptions

    dask = config["dask"]
    slurm = dict(dask["slurm"])
    slurm["job_extra_directives"] = tuple(slurm["job_extra_directives"])
    return DaskSettings(
        scheduler_address=dask["scheduler_address"],
        connect_timeout=dask["connect_timeout"],
        large_graph_warning_threshold=dask["large_graph_warning_threshold"],
        memory_mb_per_worker=dask["memory_mb_per_worker"],
        threads_per_worker=dask["threads_per_worker"],
        shared_cluster=dask["shared_cluster"],
        kind=dask["cluster"],
        slurm=SlurmOptions(**slurm),
    )


def remote_study(config: Mapping) -> RemoteStudy:
    """The ``remote`` section."""
    remote = config["remote"]
    return RemoteStudy(
        enabled=remote["enabled"],
        server=remote["server"],
        repeats=remote["repeats"],
        backends=tuple(remote["backends"]),
        latency_ms=remote["latency_ms"],
        bandwidth_mbps=remote["bandwidth_mbps"],
        attempts=remote["attempts"],
        timeout_seconds=remote["timeout_seconds"],
    )


def demo_spec(config: Mapping) -> DemoSpec | None:
    """The ``demo_atlas`` section (None without one: the source exists already)."""
    if "demo_atlas" not in config:
        return None
    from chunkatlas.ingest.demo import DemoSpec

    return DemoSpec(**config["demo_atlas"])


def grid(config: Mapping) -> Grid:
    """The store geometries: ``orientations``, ``chunks``, ``gene_chunks``, ``shards``,
    ``codecs``."""
    return Grid(
        orientations=tuple(config["orientations"]),
        chunks=tuple(config["chunks"]),
        gene_chunks=tuple(config["gene_chunks"]),
        shards=tuple(config["shards"]),
        codecs=tuple(config["codecs"]),
    )


#: Settings that may hold keys, by section: masked wherever the config is recorded.
SECRETS = {"source": ("tiledb_config", "storage_options"), "analysis": ("storage_options",)}


def public_config(config: Mapping) -> dict:
    """A copy of ``config`` with every value under :data:`SECRETS` masked."""

    def mask(value):
        if isinstance(value, dict):
            return {key: mask(inner) for key, inner in value.items()}
        return "***"

    public = copy.deepcopy(dict(config))
    for name, keys in SECRETS.items():
        section = public.get(name, {})
        for key in keys:
            if key in section:
                section[key] = mask(section[key])
    return public


def run_provenance(config: Mapping) -> dict:
    """The config as run, its hash and the chunkatlas version: recorded beside the results."""
    public = public_config(config)
    return {"chunkatlas_version": __version__, "config_hash": config_hash(public), "config": public}
