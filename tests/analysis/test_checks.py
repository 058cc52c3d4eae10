import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp

from chunkatlas.analysis._checks import check_counts, count_problems
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
        ([1, 2.5, 2, 3], True, "1 non-integer values; this HVG flavor needs raw integer counts"),
    ],
)
def test_check_counts_names_the_problem(values, integers, needle):
    with pytest.raises(ChunkatlasError, match=f"store.zarr: X has {needle}"):
        check_counts(sp.csr_matrix(matrix(values)), integers=integers, where="store.zarr")


def test_check_counts_accepts_counts_and_normalised_values():
    check_counts(sp.csr_matrix(matrix([1, 2, 3, 4])), integers=True, where="x")
    check_counts(sp.csr_matrix(matrix([1, 2.5, 3, 4])), integers=False, where="x")
