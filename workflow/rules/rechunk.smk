rule rechunk:
    """Re-write a tissue's store in one geometry: {orientation}-major, {chunk} {orientation} per chunk, {shard} chunks per shard, codec {codec} (write_dispatched sets them per element)."""
    input:
        store=out("{tissue}/fetched.zarr"),
    output:
        store=directory(f"{GRID}/store.zarr"),
        objects=objects_record(f"{GRID}/store.zarr"),
    log:
        out(f"logs/rechunk/{POINT}.log"),
    benchmark:
        benchmark_file("rechunk")
    conda:
        "../../envs/chunkatlas.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb(1000, 0.5),
        runtime=runtime(30),
    params:
        orientation=lambda wildcards: wildcards.orientation,
        zarr_format=config["zarr_format"],
    script:
        "../../scripts/rechunk.py"
