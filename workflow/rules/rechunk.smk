rule rechunk:
    """Re-write a tissue's store in one geometry: {orientation}-major, {chunk} {orientation} per chunk, {shard} chunks per shard, codec {codec} (write_dispatched sets them per element)."""
    input:
        fetched=objects_record(out("{tissue}/fetched.zarr")),
    output:
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
        reads=workflow_store(out("{tissue}/fetched.zarr")),
        writes=workflow_store(f"{GRID}/store.zarr"),
        orientation=lambda wildcards: wildcards.orientation,
        zarr_format=config["zarr_format"],
    script:
        "../../scripts/rechunk.py"
