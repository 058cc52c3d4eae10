"""The answer table of docs/geometry.md: for atlases of 10^5 to 10^8 cells, per access pattern
and backend, the layout ``chunkatlas advise`` recommends and its predicted requests, MB, seconds
and objects.

    python -m benchmarks.geometry_table [--model results/geometry/cost_model.json]

Without ``--model`` it uses the reference cost model shipped with chunkatlas.  The atlas is
Census-shaped: 20,000 genes (the Census's protein-coding share of its 60,000), 1,500 stored
values per cell.
"""

from __future__ import annotations

import argparse

from chunkatlas.model import (
    X_PATTERNS,
    Atlas,
    Layout,
    best_per_pattern,
    load_cost_model,
    predictions,
)

SIZES = (100_000, 1_000_000, 10_000_000, 100_000_000)
GENES = 20_000
VALUES_PER_CELL = 1_500


def table(model_path: str | None) -> str:
    model = load_cost_model(model_path)
    lines = [
        f"Coefficients: {model.origin}.",
        "",
        "| cells | backend | pattern | layout | requests | MB | seconds | objects of X |",
        "| ---: | --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for cells in SIZES:
        atlas = Atlas(cells, GENES, cells * VALUES_PER_CELL)
        for backend in sorted(model.fit.backends):
            best = best_per_pattern(predictions(atlas, model, backend, X_PATTERNS))
            for row in best.itertuples():
                layout = Layout(row.orientation, row.chunk, row.shard, row.codec)
                lines.append(
                    f"| {cells:,} | {backend} | {row.pattern} | {layout.describe()} | "
                    f"{row.requests:,} | {row.bytes / 1e6:,.3g} | {row.seconds:,.3g} | "
                    f"{row.objects:,} |"
                )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a study run's cost_model.json")
    print(table(parser.parse_args().model))


if __name__ == "__main__":
    main()
