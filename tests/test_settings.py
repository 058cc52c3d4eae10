"""The typed settings: every config key reaches its field, and the schema is the one place a
config key's default lives (a domain type's own default, kept for direct Python use, agrees with
it or this fails)."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterator

import pytest
import yaml

from chunkatlas.config import load_schema, validate_config
from chunkatlas.errors import ChunkatlasError
from chunkatlas.settings import (
    DaskSettings,
    Grid,
    RemoteStudy,
    Settings,
    remote_settings,
    run_provenance,
)

from .support.workflow_runs import REPO

SCHEMA = load_schema()
MISSING = object()


def leaves(schema: dict = SCHEMA, prefix: str = "") -> Iterator[tuple[str, dict]]:
    """Every config key that holds a value (a section's keys, not the section), with its
    schema; mappings without properties of their own (storage_options) are values."""
    for key, sub in schema.get("properties", {}).items():
        if sub.get("type") == "object" and "properties" in sub:
            yield from leaves(sub, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", sub


def schema_default(key: str) -> object:
    return dict(leaves())[key].get("default", MISSING)


def same(a: object, b: object) -> bool:
    """Equal as config values: lists and tuples alike, 30 and 30.0 alike."""
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b and type(a) is not bool and type(b) is not bool or a is b


# ------------------------------------------------------------------ every key reaches the tree

#: Each config key -> where the settings hold it.
SETTINGS_FIELDS = {
    "run": "run",
    "zarr_format": "zarr_format",
    "tissues": "tissues",
    "chunks": "grid.chunks",
    "orientations": "grid.orientations",
    "gene_chunks": "grid.gene_chunks",
    "shards": "grid.shards",
    "codecs": "grid.codecs",
    "analysis.label_key": "label_key",
    "analysis.read": "analysis_read",
    "analysis.storage_options": "analysis_remote.storage_options",
    "dask.cluster": "dask.kind",
    **{f"demo_atlas.{k}": f"demo.{k}" for k in ("n_cells", "n_genes", "seed")},
}
for _key, _ in leaves():
    section, _, name = _key.partition(".")
    if _key not in SETTINGS_FIELDS and section in ("source", "analysis", "remote", "dask", "judge"):
        SETTINGS_FIELDS[_key] = _key  # the same path in the tree


def attribute(obj: object, path: str) -> object:
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def full_config() -> dict:
    """config/config.yaml with a non-default value for every key settings could confuse."""
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["source"].update(tiledb_config={"vfs.s3.region": "x"}, storage_options={"a": 1})
    config["analysis"] = {"storage_options": {"b": 2}, "label_key": "tissue", "read": "http"}
    config["dask"] = {"slurm": {"job_extra_directives": ["--qos=short"]}, "cluster": "local"}
    config["judge"] = {"enabled": True, "model": "results/other/cost_model.json"}
    return validate_config(config, SCHEMA)


def test_every_config_key_has_its_field_with_its_value():
    assert set(SETTINGS_FIELDS) == {key for key, _ in leaves()}
    config = full_config()
    settings = Settings.from_config(config)
    for key, path in SETTINGS_FIELDS.items():
        value = config
        for part in key.split("."):
            value = value[part]
        assert same(attribute(settings, path), value), (key, path)
    assert settings.source_remote.storage_options == {"a": 1}
    assert settings.analysis_remote.storage_options == {"b": 2}
    assert settings.network.latency_ms == config["remote"]["latency_ms"]
    assert settings.folders == {"lung": "lung", "blood": "blood", "brain": "brain"}
    assert settings.results == f"results/{config['run']}" and settings.builds_demo_atlas


@pytest.mark.parametrize(
    "name",
    [
        "config.yaml",
        "test.yaml",
        "census.yaml",
        "pbmc.yaml",
        "geometry.yaml",
        "heldout.yaml",
        "atlas.yaml",
    ],
)
def test_shipped_configs_parse(name):
    settings = Settings.load(yaml.safe_load((REPO / "config" / name).read_text()))
    assert settings.analysis.n_comps < settings.analysis.n_top_genes
    assert settings.grid.chunks_of("cells") == settings.grid.chunks
    cluster = settings.dask.cluster(2)
    assert cluster.workers == 2 and cluster.memory_mb == 2 * settings.dask.memory_mb_per_worker
    assert settings.dask.cluster(2, 5000).memory_mb == 5000


def test_the_settings_have_no_defaults_of_their_own():
    for kind in (Settings, Grid, DaskSettings, RemoteStudy):
        for f in dataclasses.fields(kind):
            assert f.default is dataclasses.MISSING, (kind.__name__, f.name)
            assert f.default_factory is dataclasses.MISSING, (kind.__name__, f.name)


def test_what_only_the_typed_settings_refuse_is_one_line():
    config = validate_config(
        {
            "run": "t",
            "source": {"uri": "x.h5ad", "kind": "anndata"},
            "tissues": ["bone marrow", "bone_marrow"],
            "chunks": [10],
        },
        SCHEMA,
    )
    with pytest.raises(ChunkatlasError, match="would share folder 'bone_marrow'"):
        Settings.from_config(config)
    config["tissues"] = ["all"]
    config["analysis"].update(normalized=True, flavor="seurat_v3")
    with pytest.raises(ChunkatlasError) as raised:
        Settings.from_config(config)
    assert str(raised.value).startswith("config analysis.flavor: flavor seurat_v3 selects genes")
    config["analysis"].update(normalized=False)
    config["remote"]["enabled"], config["judge"]["enabled"] = False, True
    with pytest.raises(ChunkatlasError, match="judge.enabled: true needs remote.enabled: true"):
        Settings.from_config(config)


def test_remote_settings_from_a_config():
    config = {
        "remote": {"attempts": 3, "timeout_seconds": 12.5},
        "analysis": {"storage_options": {"anon": True}},
    }
    settings = remote_settings(config, "analysis")
    assert (settings.attempts, settings.timeout_seconds) == (3, 12.5)
    assert settings.storage_options == {"anon": True}
    assert remote_settings(config).storage_options == {}  # no source section


def test_the_run_record_masks_every_secret():
    config = full_config()
    record = run_provenance(config)["config"]
    assert record["source"]["storage_options"] == {"a": "***"}
    assert record["source"]["tiledb_config"] == {"vfs.s3.region": "***"}
    assert record["analysis"]["storage_options"] == {"b": "***"}
    assert config["source"]["storage_options"] == {"a": 1}  # the config itself unchanged


# ------------------------------------------------------------------ one default per config key


def section_types() -> dict[str, type]:
    """Each config section -> the domain type whose fields are its keys."""
    from chunkatlas.analysis import AnalysisParams, ClusterSettings, SlurmOptions
    from chunkatlas.ingest import SourceSettings
    from chunkatlas.ingest.demo import DemoSpec
    from chunkatlas.store import RemoteSettings

    return {
        "source": SourceSettings,
        "analysis": AnalysisParams,
        "remote": RemoteSettings,
        "dask": ClusterSettings,
        "dask.slurm": SlurmOptions,
        "demo_atlas": DemoSpec,
    }


def domain_defaults() -> dict[str, list[tuple[str, object]]]:
    """Config key -> the defaults that domain types and functions keep for direct Python use
    (named for messages)."""
    from chunkatlas import analysis, ingest, report, rewrite, store, study
    from chunkatlas.analysis import ClusterSettings

    found: dict[str, list[tuple[str, object]]] = {}

    def add(key: str, where: str, value: object) -> None:
        found.setdefault(key, []).append((where, value))

    # every field of a settings type named as a key of its section
    sections = section_types()
    keys = dict(leaves())
    for section, kind in sections.items():
        for f in dataclasses.fields(kind):
            key = f"{section}.{f.name}"
            if key not in keys:
                continue
            if f.default is not dataclasses.MISSING:
                add(key, f"{kind.__name__}.{f.name}", f.default)
            elif f.default_factory is not dataclasses.MISSING:
                add(key, f"{kind.__name__}.{f.name}", f.default_factory())
    # what a field of another name holds (one worker: memory_mb is its memory)
    add("dask.memory_mb_per_worker", "ClusterSettings.memory_mb", ClusterSettings().memory_mb)
    assert ClusterSettings().workers == 1
    # the network of the config's default: a public object store's (Network's own defaults
    # are loopback's, no emulation: not the config's)
    add("remote.latency_ms", "study.OBJECT_STORE", study.OBJECT_STORE.latency_ms)
    add("remote.bandwidth_mbps", "study.OBJECT_STORE", study.OBJECT_STORE.bandwidth_mbps)
    add("zarr_format", "store.DEFAULT_ZARR_FORMAT", store.DEFAULT_ZARR_FORMAT)
    add("codecs", "rewrite.DEFAULT_CODEC", [rewrite.DEFAULT_CODEC])
    # defaults of functions' parameters that are config keys
    functions = [
        ("source.measurement", ingest.fetch_tissue, "measurement"),
        ("source.obs_filter", ingest.fetch_tissue, "obs_filter"),
        ("source.fetch_chunk_rows", ingest.fetch_tissue, "chunk_rows"),
        ("source.var_index", ingest.fetch_tissue, "var_index"),
        ("zarr_format", ingest.fetch_tissue, "zarr_format"),
        ("zarr_format", ingest.fetch, "zarr_format"),
        ("zarr_format", rewrite.rechunk_store, "zarr_format"),
        ("zarr_format", analysis.analyze_store, "zarr_format"),
        ("remote.server", study.measure_stores_backends, "server"),
        ("remote.backends", study.measure_stores_backends, "backends"),
        ("remote.repeats", study.measure_stores_backends, "repeats"),
        ("remote.server", study.measure_backends, "server"),
        ("remote.backends", study.measure_backends, "backends"),
        ("remote.repeats", study.measure_backends, "repeats"),
        ("analysis.label_key", report.plot_pca, "label_key"),
    ]
    for key, function, name in functions:
        default = inspect.signature(function).parameters[name].default
        add(key, f"{function.__module__}.{function.__name__}({name}=)", default)
    return found


def test_every_default_outside_the_schema_agrees_with_it():
    disagree = [
        f"{where} = {value!r}, but the schema's {key} default is {schema_default(key)!r}"
        for key, defaults in domain_defaults().items()
        for where, value in defaults
        if not same(value, schema_default(key))
    ]
    assert not disagree, "\n".join(disagree)


def test_the_schema_offers_the_engines_and_flavors_the_analysis_computes():
    from chunkatlas.analysis import ENGINES, FLAVORS

    analysis = SCHEMA["properties"]["analysis"]["properties"]
    assert analysis["engine"]["enum"] == list(ENGINES)
    assert analysis["flavor"]["enum"] == list(FLAVORS)


def test_the_domain_types_take_their_config_defaults_from_the_schema():
    """Not only equal: read from it, so changing the schema changes them (no literal copy)."""
    sections = section_types()
    keys = dict(leaves())
    literal = []
    for section, kind in sections.items():
        source = inspect.getsource(kind)
        for f in dataclasses.fields(kind):
            key = f"{section}.{f.name}"
            if key not in keys or "default" not in keys[key]:
                continue
            [line] = [s for s in source.splitlines() if s.strip().startswith(f"{f.name}:")]
            if f'default_field("{key}")' not in line:
                literal.append(f"{kind.__name__}: {line.strip()}")
    assert not literal, "\n".join(literal)
