import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp

from chunkatlas.analysis._checks import check_counts, check_counts_sample, count_problems
from chunkatlas.errors import ChunkatlasError


def matrix(values):
    dense = np.zeros((6, 5), dtype=np.float32)
    dense[0, :4] = values
    dense[3, 1] = 7
    return dense


@pytest.mark.parametrize("kind", ["sparse", "dense", "dask-sparse"])
def test_count_problems_by_block(kind):
    dense = matrix([1, -2, np.nan, 0.5])
    x = {
        "sparse": sp.csr_matrix(dense),
        "dense": dense,
        "dask-sparse": da.from_array(sp.csr_matrix(dense), chunks=(2, 5)),
    }[kind]
    assert list(count_problems(x)) == [1, 1, 1]


@pytest.mark.parametrize(
    ("values", "integers", "needle"),
    [
        ([1, np.nan, 2, 3], False, "1 NaN or infinite values"),
        ([1, np.inf, 2, 3], False, "1 NaN or infinite values"),
        ([1, -1, -4, 3], False, "2 negative values"),
        ([1, 2.5, 2, 3], True, "1 non-integer values, so it does not hold raw counts"),
    ],
)
def test_check_counts_names_the_problem(values, integers, needle):
    with pytest.raises(ChunkatlasError, match=f"store.zarr: X has {needle}"):
        check_counts(sp.csr_matrix(matrix(values)), integers=integers, where="store.zarr")


def test_check_counts_accepts_counts_and_normalised_values():
    check_counts(sp.csr_matrix(matrix([1, 2, 3, 4])), integers=True, where="x")
    check_counts(sp.csr_matrix(matrix([1, 2.5, 3, 4])), integers=False, where="x")


@pytest.mark.parametrize(
    ("on_counts", "ways_out"),
    [
        (False, ("source.layer", "source.use_raw", "analysis.normalized: true")),
        (True, ("source.layer", "source.use_raw")),
    ],
)
def test_a_sample_of_non_integers_names_the_ways_out(on_counts, ways_out):
    values = np.array([0.5, 1.2, 3.0, 0.0], dtype=np.float32)
    with pytest.raises(ChunkatlasError) as raised:
        check_counts_sample(
            values, normalized=False, on_counts=on_counts, where="x.h5ad", matrix="raw.X"
        )
    message = str(raised.value)
    assert message.startswith("x.h5ad: raw.X has 2 non-integer values among its first 4 stored")
    assert "\n" not in message
    assert all(way in message for way in ways_out)
    assert ("analysis.normalized" in message) is not on_counts
    check_counts_sample(values, normalized=True, on_counts=False, where="x.h5ad")
