"""The report's first page: the answer first (a geometry for each way the store is read), then,
collapsed, every read measured and predicted, and what the run did."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from chunkatlas.model import recommendation_sentence, shard_text
from chunkatlas.study import PATTERNS

# Each access pattern of the study as the first page says it.
READS = {
    "open": "the store's metadata and obs/var",
    "one_gene": "one gene across all cells",
    "fifty_genes": "a panel of 50 genes",
    "cell_block": "a block of cells",
    "all_x": "all of X",
}


# Snakemake's report centres its first page in a box of the window's height: a page taller than
# the window overflows upwards, where nothing scrolls to it (issue 36). So the page holds the
# answer in a few lines, collapses the detail, and scrolls inside a box that always fits.
PAGE_OPEN = (
    '<div class="chunkatlas-first-page" '
    'style="max-height: calc(100vh - 5rem); overflow-y: auto; padding-right: 0.5rem">'
)


def _raw_html(*lines: str) -> list[str]:
    return ["", ".. raw:: html", "", *(f"   {line}" for line in lines), ""]


def _geometry_text(row: Mapping) -> str:
    """E.g. "gene-major, chunk 20 genes, shard 8, codec packed" (as the sentences word it)."""
    orientation = row["orientation"]
    return (
        f"{orientation[:-1]}-major, chunk {int(row['chunk']):,} {orientation}, "
        f"{shard_text(int(row['shard']))}, codec {row['codec']}"
    )


def answer_lines(recommendations: pd.DataFrame) -> list[str]:
    """The answer in one bullet per geometry: the reads it is fastest for, with the seconds
    the cost model predicts over each backend, e.g. "**gene-major, chunk 20 genes, shard 8,
    codec packed** for one gene across all cells (0.21 s over http, 0.25 s over s3)"."""
    rank = {p: i for i, p in enumerate(PATTERNS)}
    rows = recommendations.assign(
        geometry=recommendations.apply(_geometry_text, axis=1),
        rank=recommendations["pattern"].map(lambda p: rank.get(p, len(rank))),
    )
    order = rows.groupby("geometry", sort=False)["rank"].min().sort_values(kind="stable")
    lines = []
    for geometry in order.index:
        won = rows[rows["geometry"] == geometry].sort_values("rank", kind="stable")
        reads = []
        for pattern, by_backend in won.groupby("pattern", sort=False):
            seconds = ", ".join(
                f"{r.predicted_seconds:.2g} s over {r.backend}" for r in by_backend.itertuples()
            )
            reads.append(f"{READS.get(pattern, pattern)} ({seconds})")
        lines.append(f"- **{geometry}** for " + "; ".join(reads))
    return lines


def first_page(recommendations: pd.DataFrame | None, note: str, description: str) -> str:
    """The report's first page (reStructuredText): the answer first — a bullet per geometry
    with the reads it is fastest for (from ``recommendations``; ``note`` when there is none)
    — then, collapsed, every read measured and predicted, and ``description`` (what the run
    did).  Short enough to fit a 1400 x 700 window, and scrolling inside its own box beyond
    that (Snakemake's report cuts off what is taller than the window)."""
    lines = [
        *_raw_html(PAGE_OPEN),
        "**Which store geometry to write, for each way the store is read**",
        "",
    ]
    if recommendations is None or recommendations.empty:
        lines.append(f"No recommendation from this run: {note}.")
    else:
        lines += answer_lines(recommendations)
        lines += [
            "",
            "Seconds as the cost model fitted on this run's reads predicts them (it decides); "
            "*recommendation.tsv*, under *Store geometry*, has every figure. "
            "``chunkatlas advise --cells N`` scales the answer to an atlas of N cells.",
            *_raw_html("<details><summary>Every read: measured and predicted</summary>"),
            *(
                "- " + recommendation_sentence(row, f"reading {READS[row['pattern']]}")
                for _, row in recommendations.iterrows()
            ),
            *_raw_html("</details>"),
        ]
    lines += _raw_html("<details><summary>What this run did</summary>")
    lines += [description.strip()]
    lines += _raw_html("</details>", "</div>")
    return "\n".join(lines)
