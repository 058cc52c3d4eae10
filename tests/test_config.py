import pytest
import yaml

from chunkatlas.config import (
    coerce_to_schema,
    config_hash,
    load_schema,
    tissue_folder,
    tissue_folders,
    validate_config,
)
from chunkatlas.errors import ChunkatlasError

from .support.workflow_runs import REPO

SCHEMA = load_schema()


def minimal(**extra):
    return {"run": "t", "source": {"uri": "x.soma"}, "tissues": ["lung"], "chunks": [100], **extra}


@pytest.mark.parametrize(
    "name", ["config.yaml", "test.yaml", "census.yaml", "pbmc.yaml", "geometry.yaml"]
)
def test_shipped_configs_are_valid(name):
    config = validate_config(yaml.safe_load((REPO / "config" / name).read_text()), SCHEMA)
    assert config["analysis"]["n_comps"] < config["analysis"]["n_top_genes"]


def test_defaults_are_filled():
    config = validate_config(minimal(), SCHEMA)
    assert config["source"]["measurement"] == "RNA"
    assert config["source"]["layer"] == "raw"
    assert "{tissue}" in config["source"]["obs_filter"]
    assert config["analysis"]["flavor"] == "seurat"
    assert config["orientations"] == ["cells"]
    assert config["dask"]["scheduler_address"] is None


@pytest.mark.parametrize(
    ("axis", "instead"), [("var", "orientations: [genes]"), ("obs", "orientations: [cells]")]
)
def test_the_replaced_dense_axis_is_refused_with_what_to_write(axis, instead):
    with pytest.raises(ChunkatlasError) as raised:
        validate_config({**minimal(), "rechunk": {"dense_axis": axis}}, SCHEMA)
    message = str(raised.value)
    assert "\n" not in message and "rechunk.dense_axis" in message and instead in message


@pytest.mark.parametrize("bad", [["diagonal"], [], ["cells", "cells"]])
def test_orientations_outside_cells_and_genes_are_refused(bad):
    with pytest.raises(ChunkatlasError, match="config orientations"):
        validate_config({**minimal(), "orientations": bad}, SCHEMA)


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        (minimal(chunk=[5]), "unknown key(s) 'chunk'"),
        (minimal(chunks=[0]), "chunks.0: 0 is less than the minimum of 1"),
        (minimal(chunks=["big"]), "chunks.0: 'big' is not of type 'integer'"),
        (minimal(tissues=[]), "tissues"),
        (minimal(analysis={"flavor": "seurat_v9"}), "'seurat_v9' is not one of 'seurat'"),
        (minimal(analysis={"n_top_genes": 50, "n_comps": 50}), "n_comps: 50 must be below"),
        (minimal(analysis={"engine": "numpy"}), "'numpy' is not one of 'fused', 'scanpy'"),
        ({"run": "t", "tissues": ["lung"], "chunks": [1]}, "'source' is a required property"),
        (
            {k: v for k, v in minimal().items() if k != "run"},
            "'run' is a required property (name of this run: its results go to results/RUN/",
        ),
        (minimal(run="a/b"), "run: 'a/b' does not match"),
        (minimal(shards=[1, 4], zarr_format=2), "shards: [1, 4] need zarr_format 3"),
        (minimal(codecs=["gzip"]), "'gzip' is not one of 'blosc-lz4', 'zstd', 'packed'"),
        ({**minimal(demo_atlas={}), "source": {"uri": "/etc/atlas.soma"}}, "folder results/t/"),
        ({**minimal(demo_atlas={}), "source": {"uri": "results/x.soma"}}, "folder results/t/"),
        ({**minimal(demo_atlas={}), "source": {"uri": "results/t/../x"}}, "without '..'"),
        (
            {
                **minimal(demo_atlas={"n_genes": 300}, analysis={"n_top_genes": 500}),
                "source": {"uri": "results/t/demo.soma"},
            },
            "n_top_genes: 500 is more than the demo atlas's genes (demo_atlas.n_genes: 300)",
        ),
        (minimal(source={"uri": "x", "tiledb_config": {"k": [1]}}), "tiledb_config.k"),
    ],
)
def test_bad_config_gives_one_line(config, needle):
    with pytest.raises(ChunkatlasError) as err:
        validate_config(config, SCHEMA)
    message = str(err.value)
    assert needle in message
    assert "\n" not in message


def test_tissue_folders():
    assert tissue_folder("bone marrow") == "bone_marrow"
    assert tissue_folders(["lung", "adipose tissue"]) == {
        "lung": "lung",
        "adipose_tissue": "adipose tissue",
    }
    with pytest.raises(ChunkatlasError, match="share folder"):
        tissue_folders(["bone marrow", "bone_marrow"])
    with pytest.raises(ChunkatlasError, match="no letters"):
        tissue_folder("///")


def test_config_hash_is_stable_and_sensitive():
    a = minimal()
    assert config_hash(a) == config_hash(dict(reversed(list(a.items()))))
    assert config_hash(a) != config_hash(minimal(chunks=[101]))


def test_values_typed_on_the_command_line_are_coerced():
    """Snakemake's --config reads chunks=[300] as ['300'] and n_top_genes=500 may arrive as text."""
    typed = coerce_to_schema(
        {**minimal(chunks=["300", "1000"]), "analysis": {"n_top_genes": "500", "flavor": "seurat"}},
        SCHEMA,
    )
    config = validate_config(typed, SCHEMA)
    assert config["chunks"] == [300, 1000]
    assert config["analysis"]["n_top_genes"] == 500
    assert coerce_to_schema({"tissues": ["1"]}, SCHEMA) == {"tissues": ["1"]}  # strings stay


def test_a_missing_local_source_is_refused_before_any_job(tmp_path):
    from chunkatlas.settings import Settings
    from chunkatlas.steps import check_source

    def check(config):
        settings = Settings.from_config(validate_config(config, SCHEMA))
        check_source(settings.source, settings.demo, name="config source.uri")

    with pytest.raises(ChunkatlasError, match=r"source.uri: '.*nothing.soma' does not exist"):
        check(minimal(source={"uri": str(tmp_path / "nothing.soma")}))
    check(minimal(source={"uri": "s3://bucket/atlas"}))
    check(minimal(demo_atlas={}, source={"uri": "results/t/d.soma"}))


def test_the_schema_offers_the_codec_presets_there_are():
    from chunkatlas.rewrite import CODECS, DEFAULT_CODEC

    codecs = SCHEMA["properties"]["codecs"]
    assert codecs["items"]["enum"] == list(CODECS)
    assert codecs["default"] == [DEFAULT_CODEC]
