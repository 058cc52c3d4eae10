import numpy as np
import pytest
from PIL import Image

from chunkatlas.errors import ChunkatlasError
from chunkatlas.model import fit_costs
from chunkatlas.report import plot_cost_fit, plot_geometry
from chunkatlas.report._study_figures import cost_fit_figure, geometry_figure

from ..model.test_cost_model import synthetic


def test_geometry_figure_has_a_panel_per_metric_and_codec(tmp_path):
    table = synthetic()
    fig = geometry_figure(table, "s3", "one_gene")
    axes = np.array(fig.axes).reshape(4, 3)  # metrics x codecs
    assert [ax.get_title() for ax in axes[0]] == [
        "cell-major, blosc-lz4",
        "cell-major, packed",
        "cell-major, zstd",
    ]
    assert [ax.get_ylabel() for ax in axes[:, 0]] == [
        "requests",
        "MB transferred",
        "seconds (median)",
        "objects in the store",
    ]
    assert {ax.get_xlabel() for ax in fig.axes} == {"cells per chunk"}
    assert [ax.get_yscale() for ax in axes[:, 0]] == ["log", "linear", "linear", "log"]
    assert all(ax.get_ylim() == axes[1, 0].get_ylim() for ax in axes[1])  # codecs compare
    title = fig._suptitle.get_text()
    assert title.startswith("one gene over s3") and "60 ms latency, 400 Mbps" in title
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [
        "heart, unsharded",
        "lung, unsharded",
        "heart, 8 chunks/shard",
        "lung, 8 chunks/shard",
    ]
    one = geometry_figure(table[table["tissue"] == "lung"], "http", "all_x")
    assert [t.get_text() for t in one.legends[0].get_texts()] == ["unsharded", "8 chunks/shard"]
    plot_geometry(table, tmp_path / "geometry.png", "s3", "one_gene")
    with Image.open(tmp_path / "geometry.png") as image:
        assert image.format == "PNG" and image.size[1] > image.size[0]
    with pytest.raises(ChunkatlasError, match="^no fifty_genes reads over s3"):
        geometry_figure(table, "s3", "fifty_genes")


def test_cost_fit_figure_sets_predicted_against_measured(tmp_path):
    table = synthetic()
    fit = fit_costs(table)
    fig = cost_fit_figure(table, fit)
    (ax,) = fig.axes
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    assert ax.get_xlabel() == "measured seconds (median of cold reads)"
    assert ax.get_ylabel() == "predicted seconds"
    title = " ".join(ax.get_title().split())  # each backend's line, wrapped to the figure
    assert all(" ".join(line.split()) in title for line in fit.describe().splitlines())
    (diagonal,) = ax.get_lines()
    assert list(diagonal.get_xdata()) == list(diagonal.get_ydata())
    assert sum(len(c.get_offsets()) for c in ax.collections) == len(table)
    keys = [[t.get_text() for t in legend.get_texts()] for legend in (ax.artists[0], ax.legend_)]
    assert keys == [["open", "one_gene", "cell_block", "all_x"], ["http", "s3"]]
    plot_cost_fit(table, fit, tmp_path / "fit.png")
    with Image.open(tmp_path / "fit.png") as image:
        assert image.format == "PNG"
