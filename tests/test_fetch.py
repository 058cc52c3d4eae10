import anndata as ad
import pytest
import tiledbsoma

from chunkatlas.errors import ChunkatlasError
from chunkatlas.fetch import DEFAULT_OBS_FILTER, build_obs_filter, fetch_tissue


def test_obs_filter_builder():
    assert build_obs_filter(DEFAULT_OBS_FILTER, "bone marrow") == (
        'tissue_general == "bone marrow" and is_primary_data == True'
    )
    assert build_obs_filter('tissue == "{tissue}"', "lung") == 'tissue == "lung"'


@pytest.mark.parametrize(
    ("template", "tissue", "needle"),
    [
        ("tissue_general == 'lung'", "lung", "exactly the field {tissue}"),
        ('tissue == "{tissue}" and x == "{other}"', "lung", "exactly the field {tissue}"),
        (DEFAULT_OBS_FILTER, 'lung" or "1', "may not contain quotes"),
    ],
)
def test_obs_filter_builder_refuses(template, tissue, needle):
    with pytest.raises(ChunkatlasError, match=needle):
        build_obs_filter(template, tissue)


def test_fetch_takes_primary_cells_of_one_tissue(atlas, fetched):
    with tiledbsoma.Experiment.open(atlas) as exp:
        obs = exp.obs.read().concat().to_pandas()
        n_vars = exp.ms["RNA"].var.count
    expected = obs[(obs.tissue_general == "lung") & obs.is_primary_data]
    adata = ad.read_zarr(fetched)
    assert adata.n_obs == len(expected)
    assert adata.n_vars == n_vars
    assert set(adata.obs["tissue_general"]) == {"lung"}
    assert adata.obs["is_primary_data"].all()
    assert list(adata.obs["soma_joinid"]) == sorted(expected["soma_joinid"])
    assert adata.var_names[0].startswith("ENSG")
    assert adata.X.nnz > 0


# The reference is tiledbsoma's own to_anndata, whose integer index anndata converts.
@pytest.mark.filterwarnings("ignore:Transforming to str index")
def test_fetch_matches_the_in_memory_query(atlas, fetched):
    with tiledbsoma.Experiment.open(atlas) as exp:
        query = exp.axis_query(
            "RNA",
            obs_query=tiledbsoma.AxisQuery(
                value_filter=build_obs_filter(DEFAULT_OBS_FILTER, "lung")
            ),
        )
        memory = query.to_anndata("raw")
    streamed = ad.read_zarr(fetched)
    assert (memory.X != streamed.X).nnz == 0


def test_fetch_unknown_tissue_names_tissue_and_filter(atlas, tmp_path):
    with pytest.raises(ChunkatlasError, match=r"tissue 'liver' matches no cells .*liver"):
        fetch_tissue(atlas, "liver", tmp_path / "out.zarr")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"layer": "normalized"}, "X layer 'normalized' not in"),
        ({"measurement": "ATAC"}, "measurement 'ATAC' not in"),
        ({"var_index": "gene_symbol"}, "var has no column 'gene_symbol'"),
    ],
)
def test_fetch_refuses_bad_names(atlas, tmp_path, kwargs, needle):
    with pytest.raises(ChunkatlasError, match=needle):
        fetch_tissue(atlas, "lung", tmp_path / "out.zarr", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_fetch_missing_source(tmp_path):
    with pytest.raises(ChunkatlasError, match="SOMA experiment not found"):
        fetch_tissue(str(tmp_path / "nope.soma"), "lung", tmp_path / "out.zarr")
