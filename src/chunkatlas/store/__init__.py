"""AnnData zarr stores: their layout (:mod:`.layout`), writing them atomically (:mod:`.write`) and
opening them lazily with X as Dask arrays (:mod:`.lazy`)."""
