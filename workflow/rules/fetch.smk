rule fetch:
    """Stream one tissue's cells from the source (SOMA or AnnData) into a zarr AnnData store."""
    input:
        source=get_fetch_source,
    output:
        store=directory("results/{tissue}/fetched.zarr"),
    log:
        "results/logs/fetch/{tissue}.log",
    benchmark:
        "results/benchmarks/fetch/{tissue}.tsv"
    conda:
        "../../envs/chunkatlas.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 3000 * attempt,
        runtime=runtime(60),
    params:
        tissue=lambda wildcards: TISSUES[wildcards.tissue],
        # tiledb_config may hold S3 keys: the script reads it from the config, not from params,
        # which Snakemake records in .snakemake/metadata.
        source={
            k: v
            for k, v in config["source"].items()
            if k not in ("tiledb_config", "storage_options")
        },
        zarr_format=config["zarr_format"],
    script:
        "../../scripts/fetch.py"
