"""A run that judges the reference cost model by the layouts it picks (config ``judge``): the
picks written and measured even outside the grid, their regret and the model's errors in the
report, and a second run with nothing to do."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from ..support.workflow_runs import results_dir, snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.servers]

CONFIG = {
    "run": "judged",
    "demo_atlas": {"n_cells": 3000, "n_genes": 400, "seed": 0},
    "tissues": ["lung"],
    "orientations": ["cells", "genes"],
    "chunks": [500],
    "gene_chunks": [20],
    "shards": [1],
    "codecs": ["packed"],
    "analysis": {"n_top_genes": 100, "n_comps": 10},
    "remote": {"backends": ["http"], "repeats": 1},
    "judge": {"enabled": True},
}
PATTERNS = ["one_gene", "fifty_genes", "cell_block", "all_x"]


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    """(workdir, config file, the run's judge folder) of one judging run."""
    workdir = tmp_path_factory.mktemp("judged")
    config = workdir / "judged.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    done = snakemake(workdir, "--cores", "2", "--configfile", str(config))
    assert done.returncode == 0, done.stderr[-5000:]
    return workdir, config, results_dir(workdir, CONFIG) / "lung" / "judge"


def grid_names() -> set[str]:
    return {"cells-500-shard-1-packed", "genes-20-shard-1-packed"}


def test_every_pick_is_written_and_measured_even_outside_the_grid(judged):
    workdir, _, folder = judged
    picked = json.loads((folder / "picks.json").read_text())
    picks = pd.DataFrame(picked["picks"])
    assert sorted(picks["pattern"]) == sorted(PATTERNS)
    assert set(picks["backend"]) == {"http"}
    assert picked["atlas"]["n_vars"] == 400
    outside = set(picks["store"]) - grid_names()
    assert outside, "the small grid holds every pick: the test would not reach the picks' rule"
    measured = pd.read_csv(folder / "picks_remote.tsv", sep="\t")
    assert set(measured["store"]) == outside
    for name in outside:
        store = results_dir(workdir, CONFIG) / "lung" / name
        assert (store / "store.manifest.json").is_file()
        assert set(measured[measured["store"] == name]["pattern"]) >= set(PATTERNS)


def test_the_regret_of_each_pick_is_its_measured_seconds_over_the_fastest(judged):
    workdir, _, folder = judged
    regret = pd.read_csv(folder / "regret.tsv", sep="\t")
    assert sorted(regret["pattern"]) == sorted(PATTERNS)
    assert (regret["layouts"] == len(grid_names() | set(regret["pick"]))).all()
    assert (regret["regret"] >= 1).all()
    # the fastest measured read of each pattern, from the remote tables themselves
    lung = results_dir(workdir, CONFIG) / "lung"
    reads = pd.concat(
        [pd.read_csv(lung / n / "remote.tsv", sep="\t").assign(store=n) for n in grid_names()]
        + [pd.read_csv(folder / "picks_remote.tsv", sep="\t")]
    )
    for row in regret.itertuples():
        of_pattern = reads[reads["pattern"] == row.pattern]
        assert row.fastest_seconds == pytest.approx(of_pattern["seconds"].min())
        picked = of_pattern[of_pattern["store"] == row.pick]["seconds"].iloc[0]
        assert row.regret == pytest.approx(picked / of_pattern["seconds"].min())
    text = (folder / "judgement.md").read_text()
    assert f"regret, largest: {regret['regret'].max():.2f}" in text
    predicted = pd.read_csv(folder / "predicted.tsv", sep="\t")
    # every read of X of every store predicted, its requests from its recorded ranges
    assert len(predicted) == len(reads[reads["pattern"].isin(PATTERNS)])
    assert (predicted["predicted_requests"] == predicted["requests"]).mean() >= 0.9
    assert (folder / "predicted_vs_measured.png").stat().st_size > 10_000


def test_a_second_run_has_nothing_to_do(judged):
    workdir, config, _ = judged
    done = snakemake(workdir, "-n", "--cores", "2", "--configfile", str(config))
    assert done.returncode == 0, done.stderr
    assert "Nothing to be done" in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"remote": {"enabled": False}},
            "config judge.enabled: true needs remote.enabled: true",
        ),
        (
            {"judge": {"enabled": True, "model": "nowhere/cost_model.json"}},
            "cost model not found: nowhere/cost_model.json",
        ),
    ],
)
def test_a_judge_the_run_cannot_make_stops_it_before_any_job(tmp_path, change, message):
    config = {**CONFIG, **change}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    done = snakemake(tmp_path, "-n", "--configfile", str(tmp_path / "bad.yaml"))
    assert done.returncode != 0
    assert message in done.stderr
    assert not (tmp_path / "results").exists()


def test_the_run_s_own_cost_model_says_what_it_was_fitted_on(judged):
    from chunkatlas.model import load_cost_model

    workdir, _, _ = judged
    run = results_dir(workdir, CONFIG)
    model = load_cost_model(run / "cost_model.json")
    sizes = pd.read_csv(run / "summary.tsv", sep="\t").iloc[0]
    provenance = model.provenance
    assert f"lung: {sizes['n_obs']:,} cells x {sizes['n_vars']:,} genes" in provenance["tissue"]
    reads = len(pd.read_csv(run / "remote.tsv", sep="\t"))
    assert provenance["reads"].endswith(f"({reads} reads)")
    assert provenance["network"].startswith("30 ms to the first byte, 160 Mbit/s per response")
    assert "fitted on: tissue lung" in "\n".join(model.describe("http"))
