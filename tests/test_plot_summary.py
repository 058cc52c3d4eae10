import anndata as ad
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from chunkatlas.errors import ChunkatlasError
from chunkatlas.plot_pca import OTHER, plot_pca, top_labels
from chunkatlas.summary import read_benchmark
from chunkatlas.summary_figures import plot_remote


def test_top_labels_keeps_the_commonest_and_greys_the_rest():
    labels = pd.Series(list("a" * 5 + "b" * 4 + "c" * 3 + "d" * 3 + "e"))
    kept = top_labels(labels, top=3)
    assert list(kept.value_counts().sort_index().items()) == [
        ("a", 5),
        ("b", 4),
        ("c", 3),
        (OTHER, 4),
    ]


def make_result(n_types: int) -> ad.AnnData:
    rng = np.random.default_rng(0)
    types = [f"type {i}" for i in range(n_types)]
    labels = rng.choice(types, 600, p=np.linspace(2, 1, n_types) / np.linspace(2, 1, n_types).sum())
    result = ad.AnnData(obs=pd.DataFrame({"cell_type": labels}, index=map(str, range(600))))
    result.obsm["X_pca"] = rng.normal(size=(600, 5))
    result.uns["pca"] = {"variance_ratio": np.array([0.3, 0.2, 0.1, 0.05, 0.01])}
    return result


def test_plot_pca_draws_a_png_with_grey_for_the_rest(tmp_path):
    plot_pca(make_result(14), tmp_path / "pca.png", title="test")
    image = np.asarray(Image.open(tmp_path / "pca.png").convert("RGB")).astype(int)
    assert image.shape[0] > 400 and image.shape[1] > 600
    grey = np.all(np.abs(image - [211, 211, 211]) <= 2, axis=-1)  # matplotlib "lightgrey"
    assert grey.sum() > 50


def test_plot_pca_names_a_missing_label_column(tmp_path):
    with pytest.raises(ChunkatlasError, match="no column 'cell_ontology' to colour by"):
        plot_pca(make_result(3), tmp_path / "p.png", label_key="cell_ontology")
    assert not (tmp_path / "p.png").exists()


def test_read_benchmark_averages_repeats(tmp_path):
    path = tmp_path / "b.tsv"
    path.write_text("s\th:m:s\tmax_rss\tmax_vms\n2.0\t0:00:02\t100.0\t1\n4.0\t0:00:04\t300.0\t1\n")
    assert read_benchmark(path) == {"seconds": 3.0, "max_rss_mb": 200.0}


def test_plot_remote_without_measurements_says_why(tmp_path):
    empty = pd.DataFrame(columns=["tissue", "chunk", "pattern", "requests", "bytes", "seconds"])
    plot_remote(empty, tmp_path / "remote.png")
    with Image.open(tmp_path / "remote.png") as image:
        pixels = np.asarray(image.convert("L"))
    assert (pixels < 128).any()  # the sentence is drawn, not an empty canvas
