if SETTINGS.builds_demo_atlas:

    rule demo:
        """Build the embedded, Census-shaped demo atlas (a TileDB-SOMA Experiment) from a seed."""
        output:
            objects=record_of(config["source"]["uri"]),
        log:
            out("logs/demo.log"),
        benchmark:
            out("benchmarks/demo.tsv")
        conda:
            "../../envs/chunkatlas.yaml"
        resources:
            mem_mb=lambda wildcards, attempt: 2000 * attempt,
            runtime=runtime(15),
        params:
            store_suffix=".soma",  # the store beside its record is a SOMA Experiment
            bucket=run_bucket_param(),
            spec=config["demo_atlas"],
        script:
            "../../scripts/demo.py"
