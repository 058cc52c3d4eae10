rule fetch:
    """Stream one tissue's cells from the source (SOMA or AnnData) into a zarr AnnData store."""
    input:
        source=get_fetch_source,
    output:
        objects=record_of(out("{tissue}/fetched.zarr")),
    log:
        out("logs/fetch/{tissue}.log"),
    benchmark:
        benchmark_file("fetch", "{tissue}")
    conda:
        "../../envs/chunkatlas.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 3000 * attempt,
        runtime=runtime(60),
    params:
        # the stores it writes and reads (the demo atlas, its input) beside their records
        bucket=run_bucket_param(),
        tissue=lambda wildcards: TISSUES[wildcards.tissue],
        source=SETTINGS.source.output_params(),
        zarr_format=config["zarr_format"],
        # the same with its credentials, and the retries of remote reads
        settings=Untracked(SETTINGS.source),
        remote=Untracked(SETTINGS.source_remote),
    script:
        "../../scripts/fetch.py"
