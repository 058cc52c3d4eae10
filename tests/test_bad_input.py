"""Bad input: one line naming the bad value, no traceback, no output left behind."""

import subprocess
import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import zarr

from chunkatlas.errors import ChunkatlasError
from chunkatlas.rewrite import rechunk_store
from chunkatlas.store import atomic_directory, read_dask_backed, redact


def counts_store(path, obs_names=None, var_names=None):
    rng = np.random.default_rng(0)
    adata = ad.AnnData(sp.csr_matrix(rng.poisson(1, (6, 4)).astype(np.float32)))
    if obs_names is not None:
        adata.obs_names = obs_names
    if var_names is not None:
        adata.var_names = var_names
    adata.write_zarr(path)
    return path


@pytest.mark.parametrize(
    ("axis", "names"),
    [("obs", ["a", "b", "c", "a", "d", "e"]), ("var", ["g1", "g2", "g2", "g3"])],
)
@pytest.mark.filterwarnings("ignore:(Variable|Observation) names are not unique")
def test_duplicate_names_are_refused(tmp_path, axis, names):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        store = counts_store(tmp_path / "dup.zarr", **{f"{axis}_names": names})
    first = pd.Index(names)[pd.Index(names).duplicated()][0]
    with pytest.raises(ChunkatlasError, match=f"duplicate {axis} names \\(first: '{first}'\\)"):
        read_dask_backed(store, 2)
    with pytest.raises(ChunkatlasError, match="duplicate"):
        rechunk_store(store, tmp_path / "out.zarr", 2)
    assert not (tmp_path / "out.zarr").exists()


def test_store_without_x_is_refused(tmp_path):
    adata = ad.AnnData(obs=pd.DataFrame(index=["a", "b"]))
    adata.write_zarr(tmp_path / "nox.zarr")
    group = zarr.open_group(tmp_path / "nox.zarr")
    if "X" in group:
        del group["X"]
    with pytest.raises(ChunkatlasError, match="AnnData store has no X"):
        read_dask_backed(tmp_path / "nox.zarr", 2)


def test_killed_writer_leftovers_are_cleaned_and_never_read(tmp_path):
    stale = tmp_path / ".out.zarr.tmp-99999"
    stale.mkdir()
    (stale / "junk").write_text("half")
    with pytest.raises(ChunkatlasError, match="store not found"):
        read_dask_backed(tmp_path / "out.zarr", 2)
    with atomic_directory(tmp_path / "out.zarr") as tmp:
        tmp.mkdir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zarr"]


def test_redact_masks_credentials():
    assert redact("s3://AKIAXX:secret@bucket/key") == "s3://***@bucket/key"
    assert redact("https://h/x.zarr?X-Amz-Signature=abc&part=1") == (
        "https://h/x.zarr?X-Amz-Signature=***&part=1"
    )


def test_cli_error_redacts_credentials(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "chunkatlas.cli",
            "rechunk",
            "https://user:hunter2@host/x.zarr",
            str(tmp_path / "o.zarr"),
            "--chunk",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "hunter2" not in done.stderr
    assert "https://***@host/x." in done.stderr.splitlines()[-1]


@pytest.mark.workflow
def test_snakemake_job_with_bad_input_fails_with_one_line_and_no_output(tmp_path):
    import yaml

    from .support.workflow_runs import REPO, snakemake

    config = yaml.safe_load((REPO / "config/test.yaml").read_text())
    config["demo_atlas"]["n_cells"] = 600
    config["tissues"] = ["lung"]
    # a filter on a column the atlas lacks: found only when the demo atlas a job builds is read
    config["source"] = {"obs_filter": 'tissue_colour == "{tissue}"'}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    done = snakemake(tmp_path, "--cores", "1", "--configfile", str(tmp_path / "c.yaml"))
    assert done.returncode != 0
    expected = (
        """chunkatlas: error: obs filter 'tissue_colour == "lung"' failed (source.obs_filter): """
        "SOMAError: 'Column tissue_colour does not exist in schema'"
    )
    assert expected in done.stderr.splitlines()
    assert not (tmp_path / "results/test/lung/fetched.zarr").exists()
    assert not list((tmp_path / "results").rglob(".*.tmp-*"))


def test_profiles_never_keep_incomplete_outputs():
    import yaml

    from .support.workflow_runs import REPO

    for profile in (REPO / "profiles").glob("*/config.yaml"):
        settings = yaml.safe_load(profile.read_text()) or {}
        assert not settings.get("keep-incomplete"), profile


@pytest.mark.workflow
def test_secrets_in_config_never_reach_outputs_or_logs(tmp_path):
    import yaml

    from .support.workflow_runs import REPO, snakemake, store_dir

    secret = "wJalrXUtnFEMI-K7MDENG-not-a-real-key"
    config = yaml.safe_load((REPO / "config/test.yaml").read_text())
    config["demo_atlas"]["n_cells"] = 600
    config["source"] = {"tiledb_config": {"vfs.s3.aws_secret_access_key": secret}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    done = snakemake(
        tmp_path,
        f"results/test/{store_dir('lung', 'cells', 300)}/store.manifest.json",
        "--cores",
        "1",
        "--configfile",
        str(tmp_path / "c.yaml"),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert secret not in done.stdout + done.stderr
    for path in [*(tmp_path / "results").rglob("*"), *(tmp_path / ".snakemake").rglob("*")]:
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("engine", ["fused", "scanpy"])
@pytest.mark.parametrize(
    ("value", "flavor", "needle"),
    [
        (-2.0, "seurat", "has 1 negative values"),
        (np.nan, "cell_ranger", "has 1 NaN or infinite values"),
        (0.5, "seurat_v3", "has 1 non-integer values, so it does not hold raw counts \\(the HVG"),
        (0.5, "seurat", "has 1 non-integer values, so it does not hold raw counts \\(normalize"),
        (0.5, "cell_ranger", "source.use_raw: true\\), or, if X is already normalised"),
    ],
)
def test_analysis_refuses_values_that_are_not_counts(tmp_path, engine, value, flavor, needle):
    from chunkatlas.analysis import AnalysisParams, analyze_store

    rng = np.random.default_rng(1)
    counts = rng.poisson(2, (60, 30)).astype(np.float32)
    counts[7, 3] = value
    ad.AnnData(sp.csr_matrix(counts)).write_zarr(tmp_path / "in.zarr")
    with pytest.raises(ChunkatlasError, match=needle):
        analyze_store(
            tmp_path / "in.zarr",
            tmp_path / "out.zarr",
            task_cells=20,
            params=AnalysisParams(flavor=flavor, n_top_genes=10, n_comps=3, engine=engine),
        )
    assert not (tmp_path / "out.zarr").exists()


def test_fused_engine_refuses_duplicate_names(tmp_path):
    import warnings

    from chunkatlas.analysis import AnalysisParams, analyze_store

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        store = counts_store(tmp_path / "dup.zarr", var_names=["g1", "g2", "g2", "g3"])
    with pytest.raises(ChunkatlasError, match="duplicate var names \\(first: 'g2'\\)"):
        analyze_store(
            store,
            tmp_path / "out.zarr",
            task_cells=2,
            params=AnalysisParams(n_top_genes=3, n_comps=2),
        )
    assert not (tmp_path / "out.zarr").exists()


def damage_chunk(chunk, how: str) -> None:
    """Overwrite the first 64 bytes of a chunk file (its frame header: damage further in may
    still decode, to other numbers, where a codec keeps no checksum), or cut it in half."""
    data = chunk.read_bytes()
    damaged = data[: len(data) // 2] if how == "truncated" else b"\xff" * 64 + data[64:]
    chunk.write_bytes(damaged)


@pytest.mark.parametrize(
    ("engine", "how", "zarr_format"),
    [
        ("fused", "corrupt", 3),
        ("scanpy", "corrupt", 2),
        ("fused", "truncated", 2),
        ("scanpy", "truncated", 3),
    ],
)
def test_damaged_chunk_without_manifest_is_named_in_one_line(
    fetched, tmp_path, engine, how, zarr_format
):
    from .support.stores import chunk_key

    store = tmp_path / "x.zarr"  # no manifest beside it: nothing checks the chunks beforehand
    rechunk_store(fetched, store, 200, zarr_format=zarr_format)
    key = f"X/data/{chunk_key(store, 'X/data', 1)}"
    damage_chunk(store / key, how)
    out = tmp_path / "out.zarr"
    done = subprocess.run(
        [sys.executable, "-m", "chunkatlas.cli", "analyze", str(store), str(out), "--chunk", "200"]
        + ["--n-top-genes", "100", "--n-comps", "10", "--engine", engine],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    # raised on a Dask worker, re-raised in the client: one line, no client traceback
    assert done.stderr.splitlines()[-1].startswith(
        f"chunkatlas: error: store {store}: chunk '{key}' cannot be decoded (corrupt?): "
    ), done.stderr[-3000:]
    assert "Traceback (most recent call last)" not in done.stderr
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["x.zarr"]


@pytest.mark.parametrize("engine", ["fused", "scanpy"])
def test_damaged_chunk_of_dense_x_is_named(tmp_path, engine):
    import pickle

    from chunkatlas.analysis import AnalysisParams, analyze_store

    from .support.stores import chunk_key

    store = tmp_path / "dense.zarr"
    counts = np.random.default_rng(4).poisson(2, (90, 30)).astype(np.float32)
    ad.AnnData(counts).write_zarr(store, chunks=(30, 30))
    key = f"X/{chunk_key(store, 'X', 1, 0)}"
    damage_chunk(store / key, "corrupt")
    with pytest.raises(ChunkatlasError) as caught:
        analyze_store(
            store,
            tmp_path / "out.zarr",
            task_cells=30,
            params=AnalysisParams(n_top_genes=10, n_comps=3, engine=engine),
        )
    assert str(caught.value).startswith(f"store {store}: chunk '{key}' cannot be decoded")
    # what a Dask worker sends back: the same one line
    assert str(pickle.loads(pickle.dumps(caught.value))) == str(caught.value)
    assert not (tmp_path / "out.zarr").exists()


def test_fetch_emits_no_warning(atlas, tmp_path):
    import warnings

    from chunkatlas.ingest import fetch_tissue

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fetch_tissue(atlas, "lung", tmp_path / "lung.zarr", chunk_rows=300)
    assert [f"{w.category.__name__}: {w.message}" for w in caught] == []
    # the CLI's log, where Python warnings are logged too (logging.captureWarnings)
    done = subprocess.run(
        [sys.executable, "-m", "chunkatlas.cli", "fetch", atlas, "lung", str(tmp_path / "c.zarr")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert [line for line in done.stderr.splitlines() if " WARNING " in line] == []


@pytest.mark.workflow
def test_a_config_change_gives_a_short_rerun_reason(tmp_path):
    """After a config change Snakemake says which params changed, in a line of its own per job:
    the rule that records the config (provenance) names its hash, and analyze the setting that
    changed, never the whole config (twice, on one line)."""
    import yaml

    from .support.workflow_runs import REPO, snakemake, store_dir

    config = yaml.safe_load((REPO / "config/test.yaml").read_text())
    config["demo_atlas"]["n_cells"] = 600
    config.update(tissues=["lung"], orientations=["cells"], shards=[1], remote={"enabled": False})
    config["analysis"]["read"] = "local"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    results = f"results/{config['run']}"
    targets = [f"{results}/provenance/config.yaml"]
    targets.append(f"{results}/{store_dir('lung', 'cells', 300)}/hvg_pca.objects.json")
    done = snakemake(tmp_path, *targets, "--cores", "1", "--configfile", str(tmp_path / "c.yaml"))
    assert done.returncode == 0, done.stderr[-3000:]
    config["analysis"]["n_top_genes"] = 150
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    dry = snakemake(tmp_path, *targets, "-n", "--configfile", str(tmp_path / "c.yaml"))
    assert dry.returncode == 0, dry.stderr[-3000:]
    output = dry.stdout + dry.stderr
    reasons = [line for line in output.splitlines() if "Params have" in line]
    assert len(reasons) == 2, output[-3000:]  # provenance and analyze
    assert any("before: 200 now: 150" in line for line in reasons)  # analyze
    assert max(map(len, reasons)) <= 300, max(reasons, key=len)


# ------------------------------------------------------------------ checked before any job


def own_config(source: dict, **sections) -> dict:
    """config/own_h5ad.yaml (the README's minimal config for one's own file) with ``source``
    keys and whole ``sections`` (e.g. ``analysis={...}``) merged in, validated and parsed."""
    import yaml

    from chunkatlas.config import load_schema, validate_config
    from chunkatlas.settings import Settings

    from .support.workflow_runs import REPO

    config = yaml.safe_load((REPO / "config/own_h5ad.yaml").read_text())
    config["source"].update(source)
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    config = validate_config(config, load_schema())
    Settings.from_config(config)  # what only the typed settings refuse (the workflow's too)
    return config


def check_before_any_job(config: dict) -> None:
    """What the workflow runs on a validated config before any job (its settings, checked)."""
    from chunkatlas.settings import Settings
    from chunkatlas.steps import check_run

    check_run(Settings.from_config(config))


def own_anndata(normalised: bool = False) -> ad.AnnData:
    """300 cells x 3,000 genes: counts in X (or log-normalised values, the counts in
    layers['counts'] and in raw), obs with cell_type, tissue (30 cells of 'gut') and batch."""
    rng = np.random.default_rng(3)
    counts = sp.random(300, 3000, density=0.05, format="csr", dtype=np.float32, rng=rng)
    counts.data = np.ceil(counts.data * 10)
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical(rng.choice(["T", "B", "NK"], 300)),
            "tissue": pd.Categorical(["gut"] * 30 + ["lung"] * 270),
            "batch": pd.Categorical(rng.choice(["a", "b"], 300)),
        },
        index=[f"c{i}" for i in range(300)],
    )
    var = pd.DataFrame(index=[f"g{j}" for j in range(3000)])
    adata = ad.AnnData(counts, obs=obs, var=var)
    if normalised:
        import scanpy as sc

        adata.layers["counts"] = counts.copy()
        adata.raw = adata.copy()
        sc.pp.normalize_total(adata)
        sc.pp.log1p(adata)
    return adata


@pytest.fixture(scope="module")
def own_sources(tmp_path_factory) -> dict:
    """The same cells as an h5ad and a zarr store, with counts and with log-normalised X."""
    where = tmp_path_factory.mktemp("own")
    sources = {}
    for normalised in (False, True):
        adata = own_anndata(normalised)
        name = "normalised" if normalised else "counts"
        sources["h5ad", name] = str(where / f"{name}.h5ad")
        sources["zarr", name] = str(where / f"{name}.zarr")
        adata.write_h5ad(sources["h5ad", name])
        adata.write_zarr(sources["zarr", name])
    return sources


@pytest.mark.parametrize("form", ["h5ad", "zarr"])
@pytest.mark.parametrize(
    ("source", "sections", "needle"),
    [
        (
            {},
            {"analysis": {"n_top_genes": 5000}},
            "config analysis.n_top_genes: 5000 must be between 1 and n_vars (3000) of X in {uri}",
        ),
        (
            {"tissue_column": "organ"},
            {},
            "obs column 'organ' not in {uri} (source.tissue_column); has: cell_type, tissue, batch",
        ),
        (
            {"tissue_column": "tissue"},
            {"tissues": ["liver"]},
            "tissue 'liver' matches no cells in "
            "{uri} (filter: tissue == 'liver'); tissue has: gut, lung",
        ),
        (
            {"tissue_column": "tissue"},
            {"tissues": ["gut", "lung"]},
            "config analysis.n_comps: 50 must be below min(n_obs, n_top_genes) = 30 of X in {uri}",
        ),
        ({"layer": "spliced"}, {}, "layer 'spliced' not in {uri} (source.layer); has: none"),
        ({"use_raw": True}, {}, "{uri} has no .raw to take X from (source.use_raw)"),
        (
            {},
            {"analysis": {"label_key": "celltype"}},
            "config analysis.label_key: 'celltype' is "
            "not an obs column of {uri}; it has: cell_type, tissue, batch, raw_sum, nnz",
        ),
        (
            {},
            {"analysis": {"batch_key": "donor"}},
            "config analysis.batch_key: 'donor' is not an obs column of {uri}",
        ),
    ],
    ids=[
        "n_top_genes",
        "tissue_column",
        "tissue",
        "n_comps",
        "layer",
        "use_raw",
        "label_key",
        "batch_key",
    ],
)
def test_own_data_is_checked_before_any_job(own_sources, form, source, sections, needle):
    uri = own_sources[form, "counts"]
    config = own_config({"uri": uri, **source}, **sections)
    with pytest.raises(ChunkatlasError) as raised:
        check_before_any_job(config)
    assert needle.format(uri=uri) in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("form", ["h5ad", "zarr"])
def test_log_normalised_x_is_refused_before_any_job_naming_the_ways_out(own_sources, form):
    uri = own_sources[form, "normalised"]
    with pytest.raises(ChunkatlasError) as raised:
        check_before_any_job(own_config({"uri": uri}))
    message = str(raised.value)
    assert message.startswith(f"{uri}: X has ") and "non-integer values among its first" in message
    for way_out in ("source.layer", "source.use_raw: true", "analysis.normalized: true"):
        assert way_out in message
    # each way out is taken
    check_before_any_job(own_config({"uri": uri, "layer": "counts"}))
    check_before_any_job(own_config({"uri": uri, "use_raw": True}))
    check_before_any_job(own_config({"uri": uri}, analysis={"normalized": True}))
    check_before_any_job(own_config({"uri": own_sources[form, "counts"]}))
    # seurat_v3 needs the counts: refused with analysis.normalized, by the config alone
    with pytest.raises(ChunkatlasError, match="flavor seurat_v3 selects genes on raw counts"):
        own_config({"uri": uri}, analysis={"normalized": True, "flavor": "seurat_v3"})
    with pytest.raises(ChunkatlasError, match="source.layer 'counts' and source.use_raw both"):
        check_before_any_job(own_config({"uri": uri, "layer": "counts", "use_raw": True}))


def test_soma_and_demo_sources_are_checked_before_any_job(atlas):
    import yaml

    from chunkatlas.config import load_schema, validate_config

    from .support.workflow_runs import REPO

    soma = {"run": "t", "source": {"uri": atlas}, "tissues": ["lung"], "chunks": [100]}
    check_before_any_job(validate_config({**soma, "analysis": {"n_top_genes": 200}}, load_schema()))
    cases = [
        (
            {"analysis": {"n_top_genes": 500}},
            "config analysis.n_top_genes: 500 must be between 1 "
            f"and n_vars (400) of X layer 'raw' in {atlas}",
        ),
        (
            {"source": {"uri": atlas, "layer": "normalized"}},
            f"X layer 'normalized' not in {atlas} (source.layer); has: raw",
        ),
        (
            {"source": {"uri": atlas, "var_index": "symbol"}},
            "var has no column 'symbol' for var_names "
            "(source.var_index); has: soma_joinid, feature_id, feature_name, feature_length",
        ),
        (
            {"analysis": {"n_top_genes": 200, "label_key": "celltype"}},
            f"config analysis.label_key: 'celltype' is not an obs column of {atlas}",
        ),
    ]
    for change, needle in cases:
        with pytest.raises(ChunkatlasError) as raised:
            check_before_any_job(validate_config({**soma, **change}, load_schema()))
        assert needle in str(raised.value)
    demo = yaml.safe_load((REPO / "config/test.yaml").read_text())
    check_before_any_job(validate_config(demo, load_schema()))
    with pytest.raises(ChunkatlasError) as raised:
        check_before_any_job(validate_config({**demo, "tissues": ["liver"]}, load_schema()))
    assert str(raised.value) == (
        "tissue 'liver' not in the demo atlas results/test/demo_atlas.soma (tissues); has: "
        "lung, blood, brain"
    )


@pytest.mark.parametrize("name", ["cells.h5ad", "cells.zarr"])
def test_a_remote_source_that_cannot_be_reached_is_one_line(name):
    import socket

    with socket.socket() as unused:  # a loopback port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    uri = f"http://127.0.0.1:{port}/{name}"
    config = own_config({"uri": uri}, remote={"attempts": 1})
    with pytest.raises(ChunkatlasError) as raised:
        check_before_any_job(config)
    message = str(raised.value)
    assert "\n" not in message and f"127.0.0.1:{port}" in message
    assert "ClientConnectorError" in message


def test_fetch_takes_a_layer_of_counts_as_x(own_sources, tmp_path):
    uri = own_sources["h5ad", "normalised"]
    done = subprocess.run(
        [sys.executable, "-m", "chunkatlas.cli", "fetch", uri, "all", str(tmp_path / "a.zarr")]
        + ["--layer", "counts"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    fetched = ad.read_zarr(tmp_path / "a.zarr")
    assert (fetched.X != own_anndata(normalised=True).layers["counts"]).nnz == 0
    assert "counts" not in fetched.layers
    bad = subprocess.run(
        [sys.executable, "-m", "chunkatlas.cli", "fetch", uri, "all", str(tmp_path / "b.zarr")]
        + ["--layer", "spliced"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 1
    assert bad.stderr.splitlines()[-1] == (
        f"chunkatlas: error: layer 'spliced' not in {uri} (source.layer); has: counts"
    )
    assert not (tmp_path / "b.zarr").exists()


def own_workdir(tmp_path, **analysis) -> tuple:
    """A work directory with data/cells.h5ad (3,000 genes) and config/own_h5ad.yaml as c.yaml,
    ``analysis`` keys merged in."""
    import yaml

    from .support.workflow_runs import REPO

    (tmp_path / "data").mkdir()
    own_anndata().write_h5ad(tmp_path / "data/cells.h5ad")
    config = yaml.safe_load((REPO / "config/own_h5ad.yaml").read_text())
    config["analysis"].update(analysis)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    return tmp_path / "c.yaml", config


@pytest.mark.workflow
def test_a_bad_analysis_value_stops_the_run_before_any_job_deleting_nothing(tmp_path):
    """n_top_genes above the genes of one's own h5ad: one line at the workflow's start, no job,
    and an earlier run's result untouched."""
    from .support.workflow_runs import snakemake, store_dir

    configfile, _ = own_workdir(tmp_path, n_top_genes=5000)
    earlier = tmp_path / "results/own" / store_dir("all", "cells", 500) / "hvg_pca.zarr"
    earlier.mkdir(parents=True)
    (earlier / "zarr.json").write_text("{}")
    done = snakemake(tmp_path, "--cores", "1", "--configfile", str(configfile))
    assert done.returncode != 0
    said = [line for line in done.stderr.splitlines() if line.startswith("chunkatlas:")]
    assert said == [
        "chunkatlas: error: config analysis.n_top_genes: 5000 must be between 1 and n_vars "
        "(3000) of X in data/cells.h5ad"
    ]
    assert "Traceback" not in done.stderr
    assert (earlier / "zarr.json").read_text() == "{}"
    assert sorted(p.name for p in (tmp_path / "results/own").iterdir()) == ["all"]


@pytest.mark.workflow
def test_the_minimal_own_h5ad_config_runs_its_grid(tmp_path):
    """config/own_h5ad.yaml, as the README shows it, passes every check before any job and
    plans the grid the README describes: one tissue, cell-major stores of 500 and 4,000 cells
    per chunk, unsharded, packed."""
    from .support.workflow_runs import REPO, job_counts, snakemake

    configfile, _ = own_workdir(tmp_path)
    readme = (REPO / "README.md").read_text()
    assert (REPO / "config/own_h5ad.yaml").read_text().split("\n", 2)[2] in readme
    done = snakemake(tmp_path, "-n", "--configfile", str(configfile))
    assert done.returncode == 0, done.stderr[-3000:]
    counts = job_counts(done.stdout + done.stderr)
    assert counts["fetch"] == 1 and counts["rechunk"] == 2 and counts["analyze"] == 2
    output = done.stdout + done.stderr
    assert "all/cells-500-shard-1-packed" in output and "all/cells-4000-shard-1-packed" in output
    assert "genes-" not in output and "-shard-8-" not in output


def test_every_schema_error_of_a_config_is_named_at_once():
    """A config missing tissues and chunks hears of both in one line, not one per run."""
    from chunkatlas.config import load_schema, validate_config

    with pytest.raises(ChunkatlasError) as raised:
        validate_config(
            {"run": "own", "source": {"uri": "x.h5ad", "kind": "anndata"}}, load_schema()
        )
    message = str(raised.value)
    assert message.startswith("2 problems: (1) config (top level): 'tissues' is a required")
    assert "; (2) config (top level): 'chunks' is a required property" in message
    assert "\n" not in message
    with pytest.raises(ChunkatlasError) as raised:
        validate_config(
            {"run": "own", "source": {"uri": "x"}, "tissues": [], "chunks": [0]}, load_schema()
        )
    assert str(raised.value) == (
        "2 problems: (1) config tissues: [] should be non-empty; (2) config chunks.0: 0 is less "
        "than the minimum of 1"
    )


@pytest.mark.workflow
def test_an_unreachable_source_stops_a_run_but_not_a_dry_run(tmp_path):
    """A run stops before any job with one line; a dry run (e.g. of the Census's config on a
    machine offline) plans the jobs with a one-line warning."""
    import socket

    import yaml

    from .support.workflow_runs import REPO, snakemake

    with socket.socket() as unused:  # a loopback port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    config = yaml.safe_load((REPO / "config/own_h5ad.yaml").read_text())
    config["source"]["uri"] = f"http://127.0.0.1:{port}/cells.h5ad"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    run = snakemake(tmp_path, "--cores", "1", "--configfile", str(tmp_path / "c.yaml"))
    assert run.returncode != 0
    said = [line for line in run.stderr.splitlines() if line.startswith("chunkatlas:")]
    assert len(said) == 1 and said[0].startswith(
        f"chunkatlas: error: cannot read the source http://127.0.0.1:{port}/cells.h5ad "
        "(source.uri): ClientConnectorError"
    )
    assert not (tmp_path / "results").exists()
    dry = snakemake(tmp_path, "-n", "--configfile", str(tmp_path / "c.yaml"))
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "chunkatlas: warning: cannot read the source" in dry.stderr
