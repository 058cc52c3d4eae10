rule consolidate:
    """Consolidate the store's metadata and write its manifest: every stored object, its size and CRC."""
    input:
        store=record_of(f"{GRID}/store.zarr"),
    output:
        manifest=f"{GRID}/store.manifest.json",
    log:
        out(f"logs/consolidate/{POINT}.log"),
    benchmark:
        benchmark_file("consolidate")
    localrule: True
    conda:
        "../../envs/chunkatlas.yaml"
    resources:
        mem_mb=500,
        runtime=10,
    params:
        config_hash=config_hash(),
        # in an object store: the consolidated metadata goes back into the bucket's store
        bucket=run_bucket_param(),
    script:
        "../../scripts/consolidate.py"
