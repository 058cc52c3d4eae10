"""The Snakemake report as a reader opens it: its first page (the answer) on screen in a short
window, and every report item with a mimetype Snakemake knows.

These make a report of the provenance job only (its two small files written by hand, no run):
Snakemake's own template and the first page the summary job writes, in seconds."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from chunkatlas.report import first_page
from chunkatlas.study import PATTERNS

from ..support.chromium import CHROMIUM, FLAGS
from ..support.workflow_runs import REPO, snakemake

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run does)"
)
HEADING = "Which store geometry to write"
# Windows of the issue (1400 x 1000 cut the heading off at -97 px) and a shorter one.
WINDOWS = [(1400, 1000), (1400, 700)]

# Appended to a copy of the report: once React has drawn the first page, where its heading,
# first answer line and last line are, and whether each is what a click there would hit (on
# screen, not under anything) — the last line once scrolled to; then the same with every
# collapsed part of the page opened.
MEASURE = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const heading = [...document.querySelectorAll("strong, h1, h2, p")].find(
    (e) => e.textContent.trim().startsWith(%s));
  const seen = (e) => {
    const r = e.getBoundingClientRect();
    const hit = document.elementFromPoint(r.left + 4, r.top + Math.min(8, r.height / 2));
    return {top: r.top, bottom: r.bottom, hit: !!hit && (e.contains(hit) || hit.contains(e))};
  };
  const measure = () => {
    const page = heading.closest(".document");
    const items = [...page.querySelectorAll("li, p, pre, summary")].filter(
      (e) => e.checkVisibility());  // not inside a closed <details>
    const found = {height: window.innerHeight, heading: seen(heading)};
    found.first_item = seen(page.querySelector("li") || items[1]);
    const last = items[items.length - 1];
    last.scrollIntoView({block: "end"});
    found.last = seen(last);
    heading.scrollIntoView({block: "start"});
    return found;
  };
  const found = {};
  if (heading) {
    found.closed = measure();
    document.querySelectorAll("details").forEach((d) => { d.open = true; });
    found.opened = measure();
  }
  const out = document.createElement("pre");
  out.id = "chunkatlas-layout";
  out.textContent = JSON.stringify(found);
  document.body.appendChild(out);
}, 2000));
</script>"""


def page_layout(report: Path, size: tuple[int, int], tmp: Path) -> dict:
    """Where the first page's heading, first answer line and last line are, in headless
    Chromium at window ``size``: ``{"closed": {"height": viewport, "heading": {"top",
    "bottom", "hit"}, "first_item": …, "last": … (after scrolling to it)}, "opened": the same
    with every collapsed part opened}`` (empty without a heading)."""
    page = tmp / f"layout-{size[0]}x{size[1]}.html"
    page.write_text(report.read_text() + MEASURE % json.dumps(HEADING))
    dom = subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={tmp / f'profile-{page.stem}'}",
            "--virtual-time-budget=15000",
            f"--window-size={size[0]},{size[1]}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    ).stdout
    found = re.search(r'<pre id="chunkatlas-layout">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    return json.loads(found[1].replace("&quot;", '"').replace("&amp;", "&"))


def assert_answer_on_screen(layout: dict) -> None:
    """The heading and the first answer line are inside the window, not above its top (where
    nothing scrolls to), and not covered; the page's last line can be scrolled to. Both as the
    page opens and with its collapsed parts opened."""
    assert layout, "no first-page heading"
    for state, found in layout.items():
        for part in ("heading", "first_item"):
            box = found[part]
            assert 0 <= box["top"] and box["bottom"] <= found["height"], (state, part, found)
            assert box["hit"], (state, part, found)
        assert found["last"]["hit"] and found["last"]["top"] >= 0, (state, found)


def answers(geometry) -> pd.DataFrame:
    """Recommendations for two backends x every pattern, ``geometry(backend, pattern)`` giving
    each one's (orientation, chunk)."""
    return pd.DataFrame(
        [
            {"backend": backend, "pattern": pattern}
            | dict(zip(("orientation", "chunk"), geometry(backend, pattern), strict=True))
            | {"shard": 8, "codec": "packed", "predicted_seconds": 0.213, "seconds": 0.231}
            | {"requests": 12, "bytes": 4.3e6, "objects": 1200, "tissues": 3}
            for backend in ("http", "s3")
            for pattern in PATTERNS
        ]
    )


def many_answers() -> pd.DataFrame:
    """The longest answer two backends give: every backend and pattern a geometry of its own."""
    return answers(lambda b, p: ("cells", 1000 * (1 + PATTERNS.index(p)) + 500 * (b == "s3")))


def provenance_report(workdir: Path, page: str | None) -> subprocess.CompletedProcess:
    """``snakemake --report`` of the provenance job of config/test.yaml in ``workdir``, its
    outputs written by hand, with ``page`` as the summary's first page."""
    results = workdir / "results/test"
    (results / "provenance").mkdir(parents=True, exist_ok=True)
    (results / "provenance/config.yaml").write_text("config_hash: 0123456789abcdef\n")
    (results / "provenance/versions.tsv").write_text("package\tversion\nscanpy\t1.12.4\n")
    if page is not None:
        (results / "summary").mkdir(exist_ok=True)
        (results / "summary/first_page.rst").write_text(page)
    out = workdir / "report.html"
    done = snakemake(
        workdir,
        "--configfile",
        str(REPO / "config/test.yaml"),
        "--report",
        str(out),
        "results/test/provenance/config.yaml",
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def long_answer_report(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("report")
    description = (REPO / "workflow/report/workflow.rst").read_text()
    provenance_report(workdir, first_page(many_answers(), "", description))
    return workdir / "report.html"


def test_every_report_item_has_a_mimetype(tmp_path):
    """provenance/config.yaml went in as "Could not detect mimetype …, assuming text/plain"
    (twice): the report names its type, and Snakemake prints no such line."""
    done = provenance_report(tmp_path, None)
    assert "Could not detect mimetype" not in done.stdout + done.stderr
    report = (tmp_path / "report.html").read_text()
    assert "data:application/yaml;charset=utf8;filename=config.yaml;" in report


@needs_chromium
@pytest.mark.parametrize("size", WINDOWS, ids=lambda s: f"{s[0]}x{s[1]}")
def test_the_answer_is_on_screen_however_long(long_answer_report, size, tmp_path):
    """Snakemake's report centres its first page in a box of the window's height, and what
    overflows upwards cannot be scrolled to: the heading and first answer line stay on
    screen with the longest answer, and with every collapsed part opened as well."""
    assert_answer_on_screen(page_layout(long_answer_report, size, tmp_path))


def test_the_first_page_is_short():
    """The answer is a bullet per geometry, naming the reads it is fastest for; each read's
    figures and what the run did are collapsed beneath it."""

    def geometry(backend, pattern):
        return ("genes", 20) if pattern in ("one_gene", "fifty_genes") else ("cells", 4000)

    page = first_page(answers(geometry), "", "chunkatlas re-wrote each tissue ...")
    shown = page.split("<details>")[0]
    assert shown.index(f"**{HEADING}") < shown.index("\n- ")
    bullets = [line for line in shown.splitlines() if line.startswith("- ")]
    assert bullets == [
        "- **cell-major, chunk 4,000 cells, shard 8, codec packed** for the store's metadata and "
        "obs/var (0.21 s over http, 0.21 s over s3); a block of cells (0.21 s over http, 0.21 s "
        "over s3); all of X (0.21 s over http, 0.21 s over s3)",
        "- **gene-major, chunk 20 genes, shard 8, codec packed** for one gene across all cells "
        "(0.21 s over http, 0.21 s over s3); a panel of 50 genes (0.21 s over http, 0.21 s over "
        "s3)",
    ]
    hidden = page.split("<details><summary>Every read")[1].split("</details>")[0]
    assert "- reading one gene across all cells over s3: gene-major, chunk 20 genes" in hidden
    assert "chunkatlas re-wrote" in page.split("What this run did")[1]
