"""Cells per Dask task from a store's own geometry (chunks, shards; CSR chunked by values)."""

import numpy as np
import pytest
import zarr

from chunkatlas.store import XGeometry, cells_per_task_of, objects_per_pass
from chunkatlas.store._tasks import TASK_VALUES


@pytest.fixture
def sharded_csr(tmp_path):
    """X of 1,000 cells x 50 genes, 10 values per cell: chunks of 1,000 values (100 cells),
    shards of 4 chunks (400 cells), as zarr writes them."""
    group = zarr.open_group(tmp_path / "x.zarr", mode="w", zarr_format=3)
    x = group.create_group("X")
    x.attrs.update(
        {"encoding-type": "csr_matrix", "encoding-version": "0.1.0", "shape": [1000, 50]}
    )
    nnz = 10_000
    for name, values in (
        ("data", np.ones(nnz, dtype="f4")),
        ("indices", np.tile(np.arange(10, dtype="i4"), 1000)),
    ):
        x.create_array(name, shape=(nnz,), dtype=values.dtype, chunks=(1000,), shards=(4000,))
        x[name][:] = values
    x.create_array("indptr", shape=(1001,), dtype="i8", chunks=(1001,))
    x["indptr"][:] = np.arange(0, nnz + 1, 10)
    return x


def test_a_task_is_one_stored_object(sharded_csr):
    geometry = XGeometry.of(sharded_csr)
    assert (geometry.object_cells, geometry.chunk_cells) == (400, 100)
    assert cells_per_task_of(sharded_csr) == (400, "")
    assert objects_per_pass(sharded_csr, 400) == 2 * 3  # 3 shards of data, 3 of indices


def test_task_cells_that_split_objects_get_one_line_saying_what_they_cost(sharded_csr):
    task_cells, warning = cells_per_task_of(sharded_csr, 100)
    assert task_cells == 100  # as asked
    assert warning == (
        "100 cells per task splits X's stored objects (~400 cells each): a pass reads 20 "
        "objects instead of 6; leave it out for 400 cells per task"
    )
    assert cells_per_task_of(sharded_csr, 800) == (800, "")  # two whole shards per task: no worse


def test_huge_shards_give_tasks_of_whole_inner_chunks():
    # anndata 0.13's automatic shards: ~72 M values (71,000 cells), inner chunks of 162,001
    geometry = XGeometry(500_000, 71_000, 160, 72_000_000, 162_001)
    assert geometry.default_task_cells() == 160 * (TASK_VALUES // 162_001)
    assert XGeometry(3_000, 71_000, 160, 72_000_000, 162_001).default_task_cells() == 3_000


def test_dense_x_follows_its_shards(tmp_path):
    group = zarr.open_group(tmp_path / "d.zarr", mode="w", zarr_format=3)
    group.create_array("X", shape=(1000, 20), dtype="f4", chunks=(50, 20), shards=(200, 20))
    assert cells_per_task_of(group["X"]) == (200, "")
    assert objects_per_pass(group["X"], 200) == 5
    assert cells_per_task_of(group["X"], 100)[1].startswith("100 cells per task splits")
