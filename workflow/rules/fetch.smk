rule fetch:
    """Stream one tissue's cells from the source (SOMA or AnnData) into a zarr AnnData store."""
    input:
        source=get_fetch_source,
    output:
        objects=objects_record(out("{tissue}/fetched.zarr")),
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
        writes=workflow_store(out("{tissue}/fetched.zarr")),
        # the demo atlas, where the job finds it
        atlas=workflow_store(config["source"]["uri"]) if builds_demo_atlas() else Untracked(None),
        tissue=lambda wildcards: TISSUES[wildcards.tissue],
        source=SourceSettings.from_config(config).output_params(),
        zarr_format=config["zarr_format"],
        # the same with its credentials, and the retries of remote reads
        settings=Untracked(SourceSettings.from_config(config)),
        remote=Untracked(RemoteSettings.from_config(config)),
    script:
        "../../scripts/fetch.py"
