rule rechunk:
    """Re-write a tissue's store in one geometry: {orientation}-major, {chunk} {orientation} per chunk, {shard} chunks per shard, codec {codec} (write_dispatched sets them per element)."""
    input:
        fetched=record_of(out("{tissue}/fetched.zarr")),
    output:
        objects=record_of(f"{GRID}/store.zarr"),
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
        bucket=run_bucket_param(),  # the stores beside their records: in the bucket, if any
        orientation=lambda wildcards: wildcards.orientation,
        zarr_format=config["zarr_format"],
    script:
        "../../scripts/rechunk.py"
