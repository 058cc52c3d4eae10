if "demo_atlas" in config and config["source"]["kind"] == "soma":

    rule demo:
        """Build the embedded, Census-shaped demo atlas (a TileDB-SOMA Experiment) from a seed."""
        output:
            objects=objects_record(config["source"]["uri"]),
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
            writes=workflow_store(config["source"]["uri"]),
            spec=config["demo_atlas"],
        script:
            "../../scripts/demo.py"
