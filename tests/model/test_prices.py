"""Objects and money in ``chunkatlas advise``: the price arithmetic, price files refused in one
line, the objects of a whole store as rechunk writes it, the cap on objects and the preference
for fewer objects among near-ties."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import yaml

from chunkatlas.errors import ChunkatlasError
from chunkatlas.model import (
    DEMO_COLUMNS,
    NEAR_TIE,
    X_PATTERNS,
    Atlas,
    Layout,
    Prices,
    advise_mix,
    best_per_pattern,
    columns_of,
    load_cost_model,
    load_prices,
    money_text,
    predictions,
    store_objects,
    with_store_objects,
    within_cap,
)
from chunkatlas.rewrite import rechunk_store

# The price arithmetic, by hand.


def test_storage_reads_and_writing_cost_what_the_prices_say():
    prices = Prices(get_per_1000=0.0004, put_per_1000=0.005, gb_month=0.023, transfer_gb=0.09)
    # 2.5 GB for a month at $0.023 per GB-month
    assert prices.storage_per_month(2.5e9) == pytest.approx(0.0575)
    # 1,000 reads of 5 requests (5,000 GETs at $0.0004 per 1,000) moving 3 MB each (3 GB out)
    assert prices.per_1000_reads(5, 3e6) == pytest.approx(0.002 + 0.27)
    # 1,250 objects, one PUT each, at $0.005 per 1,000
    assert prices.writing(1_250) == pytest.approx(0.00625)


def test_the_default_prices_are_s3_standard_read_in_region():
    prices = Prices()
    assert (prices.get_per_1000, prices.put_per_1000, prices.gb_month) == (0.0004, 0.005, 0.023)
    assert prices.transfer_gb == 0.0 and prices.per_1000_reads(5, 3e9) == pytest.approx(0.002)
    assert "AWS S3 Standard, us-east-1" in prices.name and "2026" in prices.dated
    line = prices.describe()
    assert "\n" not in line and "read inside the provider's region" in line


@pytest.mark.parametrize(
    ("dollars", "text"),
    [
        (0, "$0"),
        (0.0004, "$0.0004"),
        (0.00045, "$0.00045"),
        (0.0123, "$0.012"),
        (0.52, "$0.52"),
        (12.3, "$12.30"),
        (1234.4, "$1,234"),
        (2.5e7, "$25,000,000"),
    ],
)
def test_money_reads_at_every_magnitude(dollars, text):
    assert money_text(dollars) == text


# Price files: any of the keys; every bad one refused in one line naming it.


def test_a_price_file_in_yaml_or_json_sets_the_prices_it_names(tmp_path):
    yaml_file = tmp_path / "prices.yaml"
    yaml_file.write_text(yaml.safe_dump({"gb_month": 0.02, "name": "A store", "dated": "2026"}))
    prices = load_prices(yaml_file)
    assert (prices.gb_month, prices.name, prices.dated) == (0.02, "A store", "2026")
    assert prices.get_per_1000 == Prices().get_per_1000  # the others as the default's
    json_file = tmp_path / "prices.json"
    json_file.write_text(json.dumps({"transfer_gb": 0.09, "get_per_1000": 1}))
    prices = load_prices(json_file)
    assert (prices.transfer_gb, prices.get_per_1000) == (0.09, 1.0)
    assert prices.name == "prices.json"  # prices of its own, not the default's name


@pytest.mark.parametrize(
    ("text", "named", "allowed"),
    [
        ("gb_month: 0.02\nget_per_10000: 0.004\n", "'get_per_10000'", "allowed keys: "),
        ("gb_month: cheap\n", "gb_month: 'cheap'", "a number of US dollars, 0 or more"),
        ("put_per_1000: -0.005\n", "put_per_1000: -0.005", "a number of US dollars, 0 or more"),
        ("transfer_gb: true\n", "transfer_gb: True", "a number of US dollars, 0 or more"),
        ("name: 12\n", "name: 12", "is not text"),
        ("- 0.02\n", "holds [0.02]", "allowed keys: "),
        ("gb_month: [0.02\n", "is not YAML or JSON", "YAML or JSON"),
    ],
)
def test_a_bad_price_file_is_one_line_naming_the_value(tmp_path, text, named, allowed):
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    with pytest.raises(ChunkatlasError) as refused:
        load_prices(path)
    message = str(refused.value)
    assert "\n" not in message and str(path) in message
    assert named in message and allowed in message


def test_a_missing_price_file_is_one_line(tmp_path):
    with pytest.raises(ChunkatlasError) as refused:
        load_prices(tmp_path / "gone.yaml")
    assert str(refused.value).startswith(f"price file not found: {tmp_path / 'gone.yaml'} (")
    assert "\n" not in str(refused.value)


# The objects of a whole store, against the files rechunk writes.


def files_under(path: Path) -> int:
    return sum(len(names) for _, _, names in os.walk(path))


@pytest.fixture(scope="module")
def own_atlas(tmp_path_factory) -> tuple[Path, Path, Atlas]:
    """An atlas of 10,000 cells (obs chunked in more than one piece) with a categorical, an
    integer and a string column, as a zarr store and an h5ad file."""
    where = tmp_path_factory.mktemp("columns")
    n_obs, n_vars = 10_000, 50
    x = sp.random(n_obs, n_vars, density=0.1, format="csr", rng=0, dtype=np.float32)
    x.data = np.ceil(x.data * 10)
    rng = np.random.default_rng(0)
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical(rng.choice(["a", "b", "c"], n_obs)),
            "depth": np.arange(n_obs),
            "barcode": [f"b{i}" for i in range(n_obs)],  # unique: stays strings
        },
        index=[f"c{i}" for i in range(n_obs)],
    )
    var = pd.DataFrame(
        {"name": [f"g{i}" for i in range(n_vars)]}, index=[f"G{i}" for i in range(n_vars)]
    )
    adata = ad.AnnData(X=x, obs=obs, var=var)
    adata.write_zarr(where / "own.zarr")
    adata.write_h5ad(where / "own.h5ad")
    return where / "own.zarr", where / "own.h5ad", Atlas(n_obs, n_vars, x.nnz)


def test_columns_are_read_from_an_anndata_source(own_atlas):
    store, h5ad, _ = own_atlas
    # obs: the index, the categorical's codes, depth, barcode, and the totals rechunk adds
    # (raw_sum, nnz); var: its index and name; the categories; the categorical's group
    expected = (6, 2, 1, 1)
    for source in (store, h5ad):
        columns = columns_of(str(source))
        assert (columns.obs, columns.var, columns.small, columns.groups) == expected


def test_the_demo_atlas_columns_are_those_of_a_fetched_demo_tissue(fetched):
    assert columns_of(str(fetched)) == DEMO_COLUMNS
    assert columns_of(None) == DEMO_COLUMNS and columns_of("census.soma") == DEMO_COLUMNS


@pytest.mark.parametrize(
    ("orientation", "chunk", "shard"),
    [
        ("cells", 1_000, 1),
        ("cells", 1_000, 4),
        ("cells", 5_000, 1),
        ("genes", 10, 1),
        ("genes", 10, 4),
    ],
)
def test_store_objects_count_every_file_rechunk_writes(
    own_atlas, tmp_path, orientation, chunk, shard
):
    source, _, atlas = own_atlas
    dest = tmp_path / "store.zarr"
    rechunk_store(source, dest, chunk, shard=shard, orientation=orientation)
    x_objects = files_under(dest / "X") - 4  # X's zarr.json files: its group's and 3 arrays'
    predicted = store_objects(atlas, x_objects, columns_of(str(source)))
    assert predicted == files_under(dest)


# The cap on objects and the preference for fewer objects among near-ties.


def layout_row(pattern: str, orientation: str, chunk: int, shard: int, **costs) -> dict:
    row = dict(orientation=orientation, chunk=chunk, shard=shard, codec="packed", pattern=pattern)
    row.update(requests=3, bytes=1e6, objects=100, x_bytes=1e9, store_bytes=1e9)
    return {**row, **costs, "store_objects": costs.get("store_objects", 150)}


def test_a_layout_near_the_fastest_with_far_fewer_objects_is_advised():
    fastest = dict(seconds=1.0, objects=10_000, store_objects=10_050)
    table = pd.DataFrame(
        [
            layout_row("one_gene", "genes", 1, 1, **fastest),
            layout_row(
                "one_gene", "genes", 1, 64, seconds=1.05, objects=1_000, store_objects=1_050
            ),
            layout_row("cell_block", "cells", 1_000, 1, **fastest),
            layout_row(
                "cell_block", "cells", 1_000, 64, seconds=1.2, objects=1_000, store_objects=1_050
            ),
        ]
    )
    best = best_per_pattern(table).set_index("pattern")
    assert 1.05 <= 1 + NEAR_TIE < 1.2
    assert best.loc["one_gene", "shard"] == 64  # 5 % slower, 10x fewer objects
    assert best.loc["cell_block", "shard"] == 1  # 20 % slower: not a near-tie


def test_near_ties_then_go_to_fewer_bytes_then_the_fastest():
    table = pd.DataFrame(
        [
            layout_row("all_x", "cells", 1_000, 1, seconds=1.0, bytes=3e6),
            layout_row("all_x", "cells", 2_000, 1, seconds=1.08, bytes=2e6),
            layout_row("all_x", "cells", 5_000, 1, seconds=1.02, bytes=2e6),
        ]
    )
    assert best_per_pattern(table).loc[0, "chunk"] == 5_000


def test_the_mix_prefers_fewer_objects_among_near_ties():
    rows = []
    layouts = {  # (orientation, chunk, shard): seconds of (one_gene, cell_block), store objects
        ("cells", 1_000, 1): ((10.0, 1.0), 5_000),
        ("cells", 1_000, 64): ((10.2, 1.04), 200),
        ("genes", 1, 1): ((1.0, 10.0), 40_000),
        ("genes", 1, 64): ((1.04, 10.2), 700),
    }
    for (orientation, chunk, shard), (seconds, objects) in layouts.items():
        for pattern, second in zip(("one_gene", "cell_block"), seconds, strict=True):
            rows.append(
                layout_row(
                    pattern, orientation, chunk, shard, seconds=second, store_objects=objects
                )
            )
    mix = advise_mix(pd.DataFrame(rows))
    assert mix.pair == (Layout("cells", 1_000, 64, "packed"), Layout("genes", 1, 64, "packed"))
    assert mix.pair_seconds == pytest.approx(1.04 + 1.04)
    assert mix.single == Layout("cells", 1_000, 64, "packed")  # 11.24 s against 11.0: near


@pytest.fixture(scope="module")
def million() -> pd.DataFrame:
    """The reference model's predictions at a million cells, with the store's objects."""
    atlas = Atlas(1_000_000, 20_000, 1_500_000_000)
    table = predictions(atlas, load_cost_model(None), "s3", list(X_PATTERNS))
    return with_store_objects(table, atlas)


def test_a_cap_below_the_fastest_layout_advises_another(million):
    one_gene = million[million["pattern"] == "one_gene"]
    fastest = one_gene.loc[one_gene["seconds"].idxmin()]
    cap = int(fastest["store_objects"]) - 1
    best = best_per_pattern(within_cap(million, cap)).set_index("pattern")
    assert (best["store_objects"] <= cap).all()
    chosen = best.loc["one_gene"]
    assert (chosen["shard"], chosen["chunk"]) != (fastest["shard"], fastest["chunk"])


def test_a_cap_below_every_layout_says_the_fewest_objects_needed(million):
    fewest = int(million["store_objects"].min())
    with pytest.raises(ChunkatlasError) as refused:
        within_cap(million, fewest - 1)
    message = str(refused.value)
    assert "\n" not in message and f"--max-objects {fewest - 1:,}" in message
    assert f"the fewest any layout needs is {fewest:,}" in message


# On the command line.


def advise(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "chunkatlas.cli", "advise", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=cwd)


STORE_LINE = re.compile(
    r"([\d,]+) objects of X, ([\d,]+) in the store; storage (\$[\d.,]+) per month"
)


def test_advise_prints_objects_and_money_and_keeps_under_the_cap(tmp_path, million):
    prices = {"name": "A test store", "dated": "priced for a test", "gb_month": 0.05}
    path = tmp_path / "prices.yaml"
    path.write_text(yaml.safe_dump({**prices, "get_per_1000": 0.001}))
    free = advise("--cells", "1000000", "--prices", path, cwd=tmp_path)
    assert free.returncode == 0, free.stderr
    assert "prices: A test store (priced for a test): GET $0.001 and PUT" in free.stdout
    found = [int(m.group(2).replace(",", "")) for m in STORE_LINE.finditer(free.stdout)]
    assert len(found) == len(X_PATTERNS) + 1  # each pattern's layout, and the mix's one layout
    best = best_per_pattern(million)  # as advise chooses, its money from the price file
    table = load_prices(path)
    for row in best.itertuples():
        assert (
            f"{row.objects:,} objects of X, {row.store_objects:,} in the store; storage "
            f"{money_text(table.storage_per_month(row.store_bytes))} per month, "
            f"{money_text(table.per_1000_reads(row.requests, row.bytes))} per 1,000 reads"
        ) in free.stdout
    cap = max(found) - 1
    capped = advise("--cells", "1000000", "--prices", path, "--max-objects", cap, cwd=tmp_path)
    assert capped.returncode == 0, capped.stderr
    assert f"--max-objects {cap:,}: " in capped.stdout
    kept = [int(m.group(2).replace(",", "")) for m in STORE_LINE.finditer(capped.stdout)]
    assert len(kept) == len(found) and max(kept) <= cap
    assert "in the two stores" in capped.stdout


def test_advise_refuses_a_cap_no_layout_meets_in_one_line(tmp_path, million):
    fewest = int(million["store_objects"].min())
    done = advise("--cells", "1000000", "--max-objects", fewest - 1, cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and f"the fewest any layout needs is {fewest:,}" in lines[0]


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_a_bad_max_objects_is_one_line(tmp_path, value):
    done = advise("--cells", "1000", "--max-objects", value, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"chunkatlas: error: argument --max-objects: {value!r} is not a positive integer "
        "(see chunkatlas advise --help)"
    ]


def test_a_bad_price_file_is_one_line_on_the_command_line(tmp_path):
    path = tmp_path / "prices.yaml"
    path.write_text("gb_month: -1\n")
    done = advise("--cells", "1000", "--prices", path, cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "gb_month: -1" in lines[0] and "0 or more" in lines[0]
