rule fetch:
    """Stream one tissue's cells from the SOMA source into a zarr AnnData store."""
    input:
        source=get_fetch_source,
    output:
        store=directory("results/{tissue}/fetched.zarr"),
    params:
        tissue=lambda wildcards: TISSUES[wildcards.tissue],
        source=config["source"],
        zarr_format=config["rechunk"]["zarr_format"],
    log:
        "results/logs/fetch/{tissue}.log",
    benchmark:
        "results/benchmarks/fetch/{tissue}.tsv"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 3000 * attempt,
        runtime=runtime(60),
    conda:
        "../../envs/chunkatlas.yaml"
    script:
        "../../scripts/fetch.py"
