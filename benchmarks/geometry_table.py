"""The answer table of docs/geometry.md: for atlases of 10^5 to 10^8 cells, per access pattern
and backend, the layout ``chunkatlas advise`` recommends and its predicted requests, MB, seconds,
objects (of X and of the whole store) and money (storage per month, per 1,000 reads).

    python -m benchmarks.geometry_table [--model results/geometry/cost_model.json]
                                        [--prices prices.yaml] [--write docs/geometry.md]

Without ``--model`` it uses the reference cost model shipped with chunkatlas, without
``--prices`` the default price table (AWS S3 Standard, us-east-1 list prices as published in
2026); ``--write`` puts the table in place of the one in that page (from its ``Coefficients:``
line to the table's end).  The atlas is Census-shaped: 20,000 genes (the Census's
protein-coding share of its 60,000), 1,500 stored values per cell, obs and var as the demo
atlas's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from chunkatlas.model import (
    X_PATTERNS,
    Atlas,
    Layout,
    Prices,
    best_per_pattern,
    load_cost_model,
    load_prices,
    money_text,
    predictions,
    with_store_objects,
)

SIZES = (100_000, 1_000_000, 10_000_000, 100_000_000)
GENES = 20_000
VALUES_PER_CELL = 1_500


def table(model_path: str | None, prices_path: str | None = None) -> str:
    model = load_cost_model(model_path)
    prices = load_prices(prices_path) if prices_path else Prices()
    lines = [
        f"Coefficients: {model.origin}.",
        "",
        f"Money: {prices.describe().removeprefix('prices: ')}.",
        "",
        "| cells | backend | pattern | layout | requests | MB | seconds | objects of X "
        "| objects of the store | storage $/month | $ per 1,000 reads |",
        "| ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for cells in SIZES:
        atlas = Atlas(cells, GENES, cells * VALUES_PER_CELL)
        for backend in sorted(model.fit.backends):
            every = with_store_objects(predictions(atlas, model, backend, X_PATTERNS), atlas)
            for row in best_per_pattern(every).itertuples():
                layout = Layout(row.orientation, row.chunk, row.shard, row.codec)
                storage = prices.storage_per_month(row.store_bytes)
                reads = prices.per_1000_reads(row.requests, row.bytes)
                lines.append(
                    f"| {cells:,} | {backend} | {row.pattern} | {layout.describe()} | "
                    f"{figure(row.requests)} | {figure(row.bytes / 1e6)} | {figure(row.seconds)} | "
                    f"{row.objects:,} | {row.store_objects:,} | {money_text(storage)} | "
                    f"{money_text(reads)} |"
                )
    return "\n".join(lines)


def figure(value: float) -> str:
    """Three significant digits, whole numbers with separators from 100 (no 2.08e+03)."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def write_into(page: Path, text: str) -> None:
    """Replace the answer table of ``page``: from its ``Coefficients:`` line to the first
    blank line after the table."""
    lines = page.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Coefficients:"))
    end = next(
        i for i in range(start + 1, len(lines)) if not lines[i] and lines[i - 1].startswith("|")
    )
    page.write_text("\n".join([*lines[:start], text, *lines[end:]]) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--model", default=None, help="a study run's cost_model.json")
    parser.add_argument(
        "--prices", default=None, help="a price table, YAML or JSON (as chunkatlas advise's)"
    )
    parser.add_argument(
        "--write", default=None, metavar="PAGE", help="replace the table in PAGE (docs/geometry.md)"
    )
    args = parser.parse_args()
    text = table(args.model, args.prices)
    if args.write:
        write_into(Path(args.write), text)
    else:
        print(text)


if __name__ == "__main__":
    main()
