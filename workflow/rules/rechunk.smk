rule rechunk:
    """Re-write a tissue's store with X and layers chunked by {chunk} (write_dispatched)."""
    input:
        store=out("{tissue}/fetched.zarr"),
    output:
        store=directory(f"{GRID}/store.zarr"),
    log:
        out("logs/rechunk/{tissue}-{chunk}.log"),
    benchmark:
        out("benchmarks/rechunk/{tissue}-{chunk}.tsv")
    conda:
        "../../envs/chunkatlas.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb(1000, 0.5),
        runtime=runtime(30),
    params:
        dense_axis=config["rechunk"]["dense_axis"],
        zarr_format=config["zarr_format"],
    script:
        "../../scripts/rechunk.py"
