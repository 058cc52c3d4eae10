import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from chunkatlas.errors import ChunkatlasError
from chunkatlas.report import (
    GridPoint,
    build_summary,
    chunk_title,
    plot_pca,
    plot_remote,
    plot_store_size,
    read_benchmark,
    remote_table,
)
from chunkatlas.report._pca_figure import OTHER, top_labels
from chunkatlas.report._step_figures import moved_figure, store_size_figure
from chunkatlas.report._study_figures import remote_figure
from chunkatlas.rewrite import consolidate_store, rechunk_store
from chunkatlas.store import write_objects_record
from chunkatlas.study._measure import measure_store


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


def test_plot_pca_hides_no_group_under_another(tmp_path):
    """Two groups of like size in one place both show, and a small group inside a large one
    is drawn on top of it (the lung's ciliated cells were hidden under its B cells)."""
    rng = np.random.default_rng(1)
    groups = {
        "large": (3000, 0.0),
        "alike a": (600, 10.0),
        "alike b": (550, 10.0),
        "small": (40, 0.0),
    }
    labels = np.concatenate([[name] * n for name, (n, _) in groups.items()])
    centres = np.concatenate([[spot] * n for n, spot in groups.values()])
    pcs = np.column_stack([centres, centres]) + rng.normal(scale=0.05, size=(len(labels), 2))
    result = ad.AnnData(obs=pd.DataFrame({"cell_type": labels}, index=map(str, range(len(labels)))))
    result.obsm["X_pca"] = pcs
    plot_pca(result, tmp_path / "pca.png")
    image = np.asarray(Image.open(tmp_path / "pca.png").convert("RGB")).astype(int)
    image = image[:, : image.shape[1] * 4 // 5]  # the axes, not the legend
    tab10 = plt.get_cmap("tab10")
    shown = {
        name: int(np.all(np.abs(image - np.array(tab10(i)[:3]) * 255) <= 3, axis=-1).sum())
        for i, name in enumerate(groups)  # colours follow size: the order above
    }
    assert shown["alike a"] > 0.3 * shown["alike b"] and shown["alike b"] > 0.3 * shown["alike a"]
    assert shown["small"] > 0.5 * shown["large"] * 40 / 3000, shown


def test_plot_pca_of_a_batch_aware_analysis_adds_a_panel_by_batch(tmp_path):
    plain, batched = make_result(4), make_result(4)
    batched.obs["dataset_id"] = np.repeat(["d1", "d2", "d3"], 200)
    batched.uns["chunkatlas"] = {"batch_key": "dataset_id"}
    plot_pca(plain, tmp_path / "plain.png")
    plot_pca(batched, tmp_path / "batched.png")
    one, two = (Image.open(tmp_path / f"{name}.png").size for name in ("plain", "batched"))
    assert two[0] > 1.8 * one[0] and two[1] == one[1]  # a second panel beside the first
    del batched.obs["dataset_id"]
    with pytest.raises(ChunkatlasError, match="no column 'dataset_id' to colour by"):
        plot_pca(batched, tmp_path / "missing.png")


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


def remote_rows(tissue: str, chunks: dict[int, float], n_obs: int) -> list[dict]:
    """A remote.tsv's rows for one tissue: small MB values that grow with the chunk."""
    rows = []
    for chunk, mb in chunks.items():
        for pattern, cells, genes in (
            ("open", 0, 0),
            ("one_gene", n_obs, 1),
            ("fifty_genes", n_obs, 50),
            ("cell_block", n_obs // 10, 400),
            ("all_x", n_obs, 400),
        ):
            rows.append(
                dict(tissue=tissue, chunk=chunk, orientation="cells", pattern=pattern)
                | dict(cells=cells, genes=genes, requests=3, bytes=int(mb * 1e6), repeats=3)
                | dict(seconds=0.02, seconds_min=0.01, seconds_max=0.05)
            )
    return rows


def test_remote_figure_reads_well_and_fits_small_values(tmp_path):
    remote = pd.DataFrame(remote_rows("lung", {100: 0.01, 1000: 0.03}, n_obs=781))
    fig = remote_figure(remote)
    fig.savefig(tmp_path / "remote.png")
    top, mb, seconds = fig.axes[:5], fig.axes[5:10], fig.axes[10:]  # rows of 5 patterns
    assert [ax.get_title() for ax in top] == [
        "one gene",
        "50 genes",
        "block of 78 cells",
        "all of X",
        "open",
    ]
    assert {ax.get_xlabel() for ax in fig.axes} == {"cells per chunk"}
    bottom, top_mb = mb[0].get_ylim()
    assert bottom == 0 and 0.03 <= top_mb < 0.05  # not a fixed 0-1 range: 0.01 vs 0.03 visible
    # seconds: the median with bars from the fastest to the slowest cold read
    (bars,) = seconds[0].containers
    spans = [segment[:, 1].tolist() for segment in bars.lines[2][0].get_segments()]
    assert spans == [pytest.approx([0.01, 0.05])] * 2
    assert bars.lines[0].get_ydata().tolist() == [0.02, 0.02]


def test_cell_blocks_of_tissues_of_different_sizes_are_given_as_a_range():
    remote = pd.DataFrame(
        remote_rows("lung", {100: 0.01}, n_obs=781) + remote_rows("heart", {100: 0.01}, 20_000)
    )
    titles = [ax.get_title() for ax in remote_figure(remote).axes[:5]]
    assert "block of 78–2,000 cells" in titles


def test_titles_name_the_orientation_and_what_a_chunk_counts():
    assert chunk_title("lung", 500, "cells") == "lung, cell-major, 500 cells per chunk"
    assert chunk_title("pbmc", "5", "genes") == "pbmc, gene-major, 5 genes per chunk"
    assert chunk_title("lung", 10000, "cells") == "lung, cell-major, 10,000 cells per chunk"


@pytest.fixture(scope="module")
def gene_chunked_points(tmp_path_factory):
    """Grid points of a small dense tissue chunked by genes (5 and 20 per chunk), measured
    remotely twice each; the source store doubles as the analysis result."""
    where = tmp_path_factory.mktemp("genes")
    rng = np.random.default_rng(1)
    source = ad.AnnData(X=rng.poisson(1.0, (781, 40)).astype("float32"))
    source.var["highly_variable"] = np.arange(40) % 4 == 0
    source.write_zarr(where / "source.zarr")
    points = []
    for chunk in (5, 20):
        here = where / f"chunks-{chunk}"
        rechunk_store(where / "source.zarr", here / "store.zarr", chunk, orientation="genes")
        consolidate_store(here / "store.zarr", here / "store.manifest.json")
        measure_store(here / "store.zarr", repeats=2).to_csv(
            here / "remote.tsv", sep="\t", index=False
        )
        points.append(
            GridPoint(
                tissue="pbmc",
                chunk=chunk,
                manifest=str(here / "store.manifest.json"),
                result=str(where / "source.zarr"),
                benchmarks={},
                remote=str(here / "remote.tsv"),
                orientation="genes",
            )
        )
    return points


def test_summary_and_figures_of_gene_chunks_say_genes(gene_chunked_points, tmp_path):
    summary = build_summary(gene_chunked_points)
    assert summary["orientation"].tolist() == ["genes", "genes"]
    assert summary["cell_block_cells"].tolist() == [78, 78]
    assert summary["remote_repeats"].tolist() == [2, 2]
    assert (summary["n_hvg"] == 10).all()
    remote = remote_table(gene_chunked_points)
    assert set(remote["orientation"]) == {"genes"} and (remote["repeats"] == 2).all()
    assert (remote["seconds_min"] <= remote["seconds_max"]).all()
    for fig in (remote_figure(remote), store_size_figure(summary)):
        assert {ax.get_xlabel() for ax in fig.axes} == {"genes per chunk"}
    plot_remote(remote, tmp_path / "remote.png")
    plot_store_size(summary, tmp_path / "store_size.png")


def test_summary_of_a_store_measured_over_two_backends(gene_chunked_points, tmp_path):
    import dataclasses

    point = gene_chunked_points[0]
    http = pd.read_csv(point.remote, sep="\t")
    both = pd.concat([http, http.assign(backend="s3")], ignore_index=True)
    both.to_csv(tmp_path / "remote.tsv", sep="\t", index=False)
    summary = build_summary([dataclasses.replace(point, remote=str(tmp_path / "remote.tsv"))])
    assert summary.loc[0, "cell_block_cells"] == 78
    assert summary.loc[0, "latency_ms"] == http.loc[0, "latency_ms"]  # the network is in the table
    for backend in ("http", "s3"):
        assert (
            summary.loc[0, f"{backend}_all_x_requests"]
            == http.set_index("pattern").loc["all_x", "requests"]
        )


def files_in(directory) -> tuple[int, int]:
    files = [p for p in directory.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def test_summary_counts_the_objects_and_bytes_each_job_moves_through_an_object_store(tmp_path):
    """Per job, one object per file plus Snakemake's marker: the store as rechunk wrote it,
    as remote reads it consolidated, the result as analyze wrote it."""
    rng = np.random.default_rng(2)
    source = ad.AnnData(X=rng.poisson(1.0, (300, 30)).astype("float32"))
    source.var["highly_variable"] = np.arange(30) % 3 == 0
    source.write_zarr(tmp_path / "source.zarr")
    store, result = tmp_path / "store.zarr", tmp_path / "source.zarr"
    rechunk_store(result, store, 100)
    write_objects_record(store, tmp_path / "store.objects.json")
    written = files_in(store)
    consolidate_store(store, tmp_path / "store.manifest.json")
    consolidated = files_in(store)
    write_objects_record(result, tmp_path / "result.objects.json")
    measure_store(store, repeats=1).to_csv(tmp_path / "remote.tsv", sep="\t", index=False)
    point = GridPoint(
        tissue="lung",
        chunk=100,
        manifest=str(tmp_path / "store.manifest.json"),
        result=str(result),
        benchmarks={},
        remote=str(tmp_path / "remote.tsv"),
        store_objects=str(tmp_path / "store.objects.json"),
        result_objects=str(tmp_path / "result.objects.json"),
    )
    row = build_summary([point]).iloc[0]
    rechunk = (row["rechunk_moved_objects"], row["rechunk_moved_bytes"])
    assert rechunk == written
    assert row["consolidate_moved_objects"] == written[0]
    assert (row["remote_moved_objects"], row["remote_moved_bytes"]) == consolidated
    assert consolidated[1] > written[1]  # the consolidated metadata
    assert row["analyze_moved_objects"] == row["plot_pca_moved_objects"] == files_in(result)[0]
    jobs = ["rechunk", "consolidate", "remote", "analyze", "plot_pca"]
    assert row["moved_objects"] == sum(row[f"{job}_moved_objects"] for job in jobs)
    assert row["moved_bytes"] == sum(row[f"{job}_moved_bytes"] for job in jobs)


def test_the_moved_figure_draws_a_line_per_shard_setting_and_refuses_a_summary_without_it():
    summary = pd.DataFrame(
        {
            "tissue": ["lung"] * 4,
            "orientation": ["cells"] * 4,
            "codec": ["zstd"] * 4,
            "chunk": [500, 4000, 500, 4000],
            "shard": [1, 1, 8, 8],
            "moved_objects": [400, 60, 60, 15],
            "moved_bytes": [4e6, 3e6, 4e6, 3e6],
        }
    )
    fig = moved_figure(summary)
    objects = fig.axes[0]
    assert objects.get_legend_handles_labels()[1] == ["unsharded", "8 chunks/shard"]
    assert list(objects.get_lines()[0].get_ydata()) == [400, 60]
    with pytest.raises(ChunkatlasError, match="no objects moved"):
        moved_figure(summary.drop(columns=["moved_objects", "moved_bytes"]))


def test_figures_of_one_geometry_say_what_they_leave_out():
    """remote.png, steps.png, analysis_passes.png and store_size.png draw one geometry per
    chunk size: their titles name it, and say where the others are."""
    from chunkatlas.report import reference_geometry
    from chunkatlas.report._step_figures import steps_figure, store_size_figure

    rows = pd.DataFrame(
        [
            {"tissue": "lung", "orientation": "cells", "chunk": c, "shard": s, "codec": "packed"}
            | {"store_bytes": 1e6 * c, "rechunk_seconds": 1.0, "rechunk_max_rss_mb": 100.0}
            for c in (500, 4000)
            for s in (1, 8)
        ]
    )
    drawn = reference_geometry(rows)
    assert list(drawn["shard"]) == [1, 1] and drawn.attrs["left_out"] == 2
    title = steps_figure(drawn)._suptitle.get_text()
    assert "cell-major, unsharded, codec packed" in title and "other geometries left out" in title
    size_title = store_size_figure(drawn).axes[0].get_title()
    assert "unsharded" in size_title and "left out" in size_title
    whole = steps_figure(rows[rows["shard"] == 8])._suptitle.get_text()
    assert "8 chunks per shard" in whole and "left out" not in whole


def test_steps_figure_draws_fetch_per_tissue_not_against_chunk_size():
    """fetch runs once per tissue, before any chunking (and so does each step of one job per
    tissue): steps.png draws it as a bar per tissue, and no panel against chunk size has a
    fetch line (it would be flat by construction)."""
    from chunkatlas.report._step_figures import steps_figure
    from chunkatlas.workflow import PER_TISSUE_STEPS

    assert "fetch" in PER_TISSUE_STEPS
    fetched = {"lung": 12.0, "blood": 8.0}
    rows = pd.DataFrame(
        [
            {"tissue": t, "orientation": "cells", "chunk": c, "shard": 1, "codec": "packed"}
            | {f"{step}_seconds": f + i for i, step in enumerate(PER_TISSUE_STEPS)}
            | {f"{step}_max_rss_mb": 300.0 + f + i for i, step in enumerate(PER_TISSUE_STEPS)}
            | {"rechunk_seconds": c / 100, "rechunk_max_rss_mb": 100.0 + c / 10}
            | {"analyze_seconds": c / 50 + f, "analyze_max_rss_mb": 200.0 + c / 10}
            for t, f in fetched.items()
            for c in (500, 4000)
        ]
    )
    fig = steps_figure(rows, PER_TISSUE_STEPS)
    chunked = [ax for ax in fig.axes if ax.get_lines()]
    assert len(chunked) == 4  # rechunk and analyze: seconds and memory
    per_tissue = {v for f in fetched.values() for v in (f, 300.0 + f)}  # fetch's values
    for ax in chunked:
        assert not any(step in ax.get_title() for step in PER_TISSUE_STEPS)
        assert ax.get_xlabel() == "cells per chunk"
        assert not any(set(line.get_ydata()) & per_tissue for line in ax.get_lines())
    bars = [ax for ax in fig.axes if not ax.get_lines()]
    assert len(bars) == 2 * len(PER_TISSUE_STEPS)  # the first columns: seconds, memory
    n = len(PER_TISSUE_STEPS)
    seconds, memory = bars[:n], bars[n:]  # figure.axes go row by row
    assert [ax.get_title() for ax in seconds] == [
        f"{s} (once per tissue)" for s in PER_TISSUE_STEPS
    ]
    assert [t.get_text() for t in seconds[0].get_xticklabels()] == ["blood", "lung"]
    assert [p.get_height() for p in seconds[0].patches] == [8.0, 12.0]
    assert [p.get_height() for p in memory[0].patches] == [308.0, 312.0]
    plt.close(fig)


def test_the_first_page_leads_with_the_answer():
    from chunkatlas.report import first_page

    answer = pd.DataFrame(
        [
            {"pattern": "one_gene", "backend": "s3", "orientation": "genes", "chunk": 20}
            | {"shard": 8, "codec": "packed", "predicted_seconds": 0.2, "seconds": 0.23}
            | {"requests": 3, "bytes": 14_000, "objects": 76, "tissues": 3}
        ]
    )
    page = first_page(answer, "", "chunkatlas re-wrote each tissue ...")
    text = [line for line in page.splitlines() if line and not line.startswith((".. ", "   "))]
    assert text[0].startswith("**Which store geometry to write")
    assert text[1].startswith("- **gene-major, chunk 20 genes, shard 8, codec packed** for one")
    assert "- reading one gene across all cells over s3: gene-major, chunk 20 genes" in page
    assert page.index("one gene across") < page.index("chunkatlas re-wrote")
    empty = first_page(None, "one store is too few to fit a cost model", "what the run did")
    assert "No recommendation from this run: one store is too few" in empty
