import itertools
import math
import re

import numpy as np
import pandas as pd
import pytest

from chunkatlas.errors import ChunkatlasError
from chunkatlas.model import (
    fit_costs,
    recommend,
    recommendation_text,
)
from chunkatlas.model._fit import predicted
from chunkatlas.model._reader import READERS, read_features

PER_REQUEST = 0.03  # seconds per round trip
PER_BYTE = 1 / 50e6  # 50 MB/s per response
# codec: (stored bytes per raw byte, raw bytes decoded per second)
CODECS = {"blosc-lz4": (0.5, 400e6), "packed": (0.8, 2e9), "zstd": (0.3, 150e6)}
N_OBS = {"lung": 4000, "heart": 12000}
N_VARS = 2000


def synthetic(
    tissues=("lung", "heart"),
    codecs=tuple(CODECS),
    costs=None,
    decode_scale=1.0,
    noise=0.02,
    seed=0,
) -> pd.DataFrame:
    """A remote table whose seconds follow the cost model read by plain anndata: ``costs``
    maps each backend to (seconds per round trip, seconds per byte of one response); X is
    cell-chunked float32."""
    costs = costs or {"http": (PER_REQUEST, PER_BYTE), "s3": (PER_REQUEST, PER_BYTE)}
    rng = np.random.default_rng(seed)
    rows = []
    grid = itertools.product(costs, tissues, (250, 1000, 4000), (1, 8), codecs)
    for backend, tissue, chunk, shard, codec in grid:
        ratio, rate = CODECS[codec]
        raw = N_OBS[tissue] * N_VARS * 4
        store = raw * ratio
        chunks = math.ceil(N_OBS[tissue] / chunk)
        for pattern, share in (("open", 0), ("one_gene", 1), ("cell_block", 0.1), ("all_x", 1)):
            if pattern == "open":
                requests, nbytes = 8, 200_000
            else:
                read = max(1, math.ceil(chunks * share))
                # a sharded read also fetches each shard's index
                requests = read + (math.ceil(read / shard) if shard > 1 else 0)
                nbytes = int(store * read / chunks)
            per_round, per_byte = costs[backend]
            decode = raw / rate * nbytes / store
            read = pd.DataFrame(
                dict(pattern=[pattern], requests=[requests], bytes=[nbytes], shard=[shard])
            )
            [[rounds, stream, _]] = read_features(read, READERS["anndata"])
            exact = rounds * per_round + stream * per_byte + decode * decode_scale
            seconds = exact * (1 + noise * rng.standard_normal())
            rows.append(
                dict(tissue=tissue, chunk=chunk, orientation="cells", shard=shard, codec=codec)
                | dict(backend=backend, server="loopback", pattern=pattern, repeats=3)
                | dict(requests=requests, bytes=nbytes, seconds=seconds)
                | dict(seconds_min=0.9 * seconds, seconds_max=1.2 * seconds)
                | dict(cells=N_OBS[tissue], genes=N_VARS, latency_ms=60.0, bandwidth_mbps=400.0)
                | dict(objects=math.ceil(chunks / shard) + 10, store_bytes=int(store))
                | dict(decode_seconds=raw / rate)
            )
    return pd.DataFrame(rows)


def test_the_fit_recovers_known_costs_for_each_backend():
    table = synthetic(costs={"http": (0.03, 1 / 50e6), "s3": (0.06, 1 / 20e6)}, decode_scale=0.5)
    fit = fit_costs(table)
    assert list(fit.backends) == ["http", "s3"]
    for backend, per_round, megabytes in (("http", 0.03, 50), ("s3", 0.06, 20)):
        costs = fit[backend]
        assert costs.seconds_per_round == pytest.approx(per_round, rel=0.05)
        assert costs.megabytes_per_second == pytest.approx(megabytes, rel=0.05)
        # decoding is the smallest share of these seconds, so the least precise coefficient
        assert costs.decode_scale == pytest.approx(0.5, rel=0.15)
        assert costs.r2 > 0.99 and costs.median_relative_error < 0.03
        assert costs.reader == "anndata"
        assert (costs.latency_ms, costs.bandwidth_mbps, costs.note) == (60.0, 400.0, "")
    assert fit.table()["backend"].tolist() == ["http", "s3"]
    assert re.fullmatch(
        r"http: [\d.]+ ms per round trip, [\d.]+ MB/s per response(, [\d.e+]+ MB/s selected "
        r"in memory)?, decoding 0.[45]\d* × a "
        r"local pass, "
        r"fixed [\d.e-]+ s to open, [\d.e-]+ s per read of X; R² 0.99\d, median error [\d.]+%",
        fit.describe().splitlines()[0],
    )


def test_without_decode_seconds_the_fit_has_no_decode_term_and_says_why():
    table = synthetic(decode_scale=0.0).drop(columns="decode_seconds")
    costs = fit_costs(table)["s3"]
    assert costs.decode_scale is None and costs.note == "no decode term: no decode_seconds column"
    assert costs.seconds_per_round == pytest.approx(PER_REQUEST, rel=0.05)
    assert costs.megabytes_per_second == pytest.approx(50, rel=0.05)


def test_with_one_codec_decoding_is_told_from_transfer_by_the_responses_in_flight():
    # decoding grows with all of a read's bytes, transfer with its bytes over the responses
    # in flight: reads of many requests tell them apart even in a single codec
    costs = fit_costs(synthetic(codecs=("zstd",)))["http"]
    assert costs.decode_scale == pytest.approx(1.0, rel=0.1)
    assert costs.megabytes_per_second == pytest.approx(50, rel=0.05)


def test_with_one_response_per_read_and_one_codec_decoding_is_folded_into_transfer():
    table = synthetic(codecs=("zstd",), noise=0.0)
    table = table[table["requests"] <= 3]  # one response in flight: bytes ∝ decode seconds
    costs = fit_costs(table)["http"]
    assert costs.decode_scale is None
    assert costs.note == "no decode term: decoding costs the same per byte in every store"


def test_predicted_adds_the_model_seconds_of_each_row():
    table = synthetic(noise=0.0)
    rows = predicted(table, fit_costs(table))
    assert rows["predicted_seconds"].to_numpy() == pytest.approx(table["seconds"], rel=1e-3)
    assert "predicted_seconds" not in table.columns
    with pytest.raises(ChunkatlasError, match="^no cost fit for backend"):
        predicted(table.assign(backend="gcs"), fit_costs(table))


def one_backend(rows: int, **columns) -> pd.DataFrame:
    table = synthetic(tissues=("lung",), costs={"s3": (PER_REQUEST, PER_BYTE)}).head(rows)
    return table.assign(**columns)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (pd.DataFrame({"backend": ["s3"]}), "needs column(s) requests, bytes, seconds"),
        (one_backend(0), "the remote table has no rows"),
        (one_backend(2), "cannot fit s3: 2 rows with positive seconds, need at least 3"),
        (one_backend(20, seconds=0.0), "cannot fit s3: 0 rows with positive seconds"),
        (one_backend(20, requests=0), "cannot fit s3: column requests is zero in every row"),
        (one_backend(20, bytes=0), "cannot fit s3: column bytes is zero in every row"),
        (
            one_backend(20, requests=4, bytes=4_000_000, shard=1),
            "cannot fit s3: requests and bytes are proportional in every row",
        ),
    ],
    ids=["columns", "empty", "few", "untimed", "no-requests", "no-bytes", "proportional"],
)
def test_a_table_that_cannot_be_fitted_is_refused_in_one_line(table, message):
    with pytest.raises(ChunkatlasError) as error:
        fit_costs(table)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.fixture(scope="module")
def lung():
    table = synthetic(tissues=("lung",))
    return table, fit_costs(table)


def test_recommend_picks_the_geometry_the_model_predicts_fastest_and_says_so(lung):
    table, fit = lung
    chosen = recommend(table, fit)
    assert chosen[["backend", "pattern"]].values.tolist() == [
        [backend, pattern]
        for backend in ("http", "s3")
        for pattern in ("open", "one_gene", "cell_block", "all_x")
    ]
    rows = predicted(table, fit)
    rows = rows[(rows["backend"] == "s3") & (rows["pattern"] == "one_gene")]
    fastest = rows.sort_values(["predicted_seconds", "objects", "bytes"]).iloc[0]
    row = chosen.set_index(["backend", "pattern"]).loc[("s3", "one_gene")]
    assert (row["chunk"], row["shard"], row["codec"]) == (
        fastest["chunk"],
        fastest["shard"],
        fastest["codec"],
    )
    assert row["predicted_seconds"] == pytest.approx(fastest["predicted_seconds"])
    assert (row["latency_ms"], row["bandwidth_mbps"]) == (60.0, 400.0)  # the network it holds for
    assert (
        row["fit_r2"] == fit["s3"].r2 and row["fit_median_error"] == fit["s3"].median_relative_error
    )
    shard = "unsharded" if fastest["shard"] == 1 else f"shard {fastest['shard']:,}"
    assert row["sentence"] == (
        f"for one_gene reads over s3: cell-major, chunk {fastest['chunk']:,} cells, {shard}, "
        f"codec {fastest['codec']} ({fastest['predicted_seconds']:.3g} s predicted, "
        f"{fastest['seconds']:.3g} s measured; {fastest['requests']:,.0f} requests, "
        f"{fastest['bytes'] / 1e6:.3g} MB, {fastest['objects']:,.0f} objects)"
    )
    text = recommendation_text(chosen)
    assert len(text.splitlines()) == len(chosen)
    assert f"- {row['sentence']}; the cost model predicts " in text


def test_one_lucky_read_does_not_change_the_answer(lung):
    table, fit = lung
    lucky = table.copy()
    slowest = lucky[(lucky["backend"] == "s3") & (lucky["pattern"] == "one_gene")]
    lucky.loc[slowest["seconds"].idxmax(), "seconds"] = 1e-4  # one noisy, fast read
    geometry = ["chunk", "shard", "codec"]
    assert recommend(lucky, fit)[geometry].equals(recommend(table, fit)[geometry])


def test_patterns_with_identical_traffic_get_the_same_answer(lung):
    table, fit = lung
    # fifty genes moving exactly what one gene moves, but timed slower (noise)
    one_gene = table[table["pattern"] == "one_gene"]
    fifty = one_gene.assign(pattern="fifty_genes", seconds=one_gene["seconds"] * 1.7)
    chosen = recommend(pd.concat([table, fifty], ignore_index=True), fit)
    chosen = chosen.set_index(["backend", "pattern"])
    for backend in ("http", "s3"):
        one, fifty = chosen.loc[(backend, "one_gene")], chosen.loc[(backend, "fifty_genes")]
        assert (one["chunk"], one["shard"], one["codec"]) == (
            fifty["chunk"],
            fifty["shard"],
            fifty["codec"],
        )


def test_ties_go_to_fewer_objects_then_fewer_bytes_whatever_the_row_order(lung):
    table, fit = lung
    # every geometry moves the same traffic: the predictions tie (unsharded: a part of a shard
    # costs a round trip more, its index first)
    table = table[table["shard"] == 1].assign(
        requests=5, bytes=1_000_000, decode_seconds=0.5, store_bytes=2_000_000
    )
    chosen = recommend(table, fit).set_index(["backend", "pattern"])
    fewest = table["objects"].min()
    block = chosen.loc[("s3", "cell_block")]
    assert block["objects"] == fewest
    tied = table[(table["objects"] == fewest) & (table["pattern"] == "cell_block")]
    first = tied.sort_values(["orientation", "chunk", "shard", "codec"]).iloc[0]
    assert (block["chunk"], block["shard"], block["codec"]) == (
        first["chunk"],
        first["shard"],
        first["codec"],
    )
    shuffled = table.sample(frac=1, random_state=1)
    assert recommend(shuffled, fit).equals(recommend(table, fit))


def test_recommend_averages_tissues_and_needs_every_tissue_measured():
    table = synthetic()
    fit = fit_costs(table)
    assert recommend(table, fit)["sentence"].str.endswith("; mean of 2 tissues)").all()
    unshared = table.assign(chunk=table.index)  # no geometry in both tissues
    with pytest.raises(ChunkatlasError, match="^no geometry was measured for every tissue of"):
        recommend(unshared, fit)
