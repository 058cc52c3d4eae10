if config["judge"]["enabled"]:

    checkpoint picks:
        """What `chunkatlas advise` picks for the fetched tissue, per remote backend and pattern of X, with the cost model judged (the reference model, or judge.model)."""
        input:
            fetched=record_of(out("{tissue}/fetched.zarr")),
            model=judged_model_file(),
        output:
            picks=out("{tissue}/judge/picks.json"),
        log:
            out("logs/judge/picks-{tissue}.log"),
        conda:
            "../../envs/chunkatlas.yaml"
        resources:
            mem_mb=lambda wildcards, attempt: 2000 * attempt,
            runtime=runtime(15),
        params:
            bucket=run_bucket_param(),
            backends=config["remote"]["backends"],
            model=config["judge"]["model"],
        script:
            "../../scripts/picks.py"

    rule measure_picks:
        """Measure the picked stores that the grid does not hold, as the remote step measures the grid's."""
        input:
            picks=out("{tissue}/judge/picks.json"),
            stores=lambda wildcards: picked_files(wildcards.tissue, "store.objects.json"),
            manifests=lambda wildcards: picked_files(wildcards.tissue, "store.manifest.json"),
        output:
            table=out("{tissue}/judge/picks_remote.tsv"),
        log:
            out("logs/judge/measure-{tissue}.log"),
        conda:
            "../../envs/chunkatlas.yaml"
        threads: len(config["remote"]["backends"])
        resources:
            mem_mb=mem_mb(1000, 2),
            # at most one store per backend and pattern of X (4), as the remote step's per store
            runtime=runtime(
                3 * 4 * len(config["remote"]["backends"]) * (1 + config["remote"]["repeats"])
            ),
        params:
            names=lambda wildcards: picked_folders(wildcards.tissue),
            study=Untracked(SETTINGS.remote),
            settings=Untracked(SETTINGS.source_remote),
            bucket=run_bucket_param(),
        script:
            "../../scripts/measure_picks.py"

    rule judge:
        """The regret of the tissue's picks over every measured layout, and the cost model's errors on every read of X."""
        input:
            picks=out("{tissue}/judge/picks.json"),
            grid=lambda wildcards: tissue_files(wildcards.tissue, "remote.tsv"),
            picked=out("{tissue}/judge/picks_remote.tsv"),
            model=judged_model_file(),
        output:
            regret=report(
                out("{tissue}/judge/regret.tsv"),
                caption="../report/judge.rst",
                category="Judgement of the cost model",
                labels={"tissue": "{tissue}", "content": "regret of the picks"},
            ),
            predicted=out("{tissue}/judge/predicted.tsv"),
            figure=report(
                out("{tissue}/judge/predicted_vs_measured.png"),
                caption="../report/judge.rst",
                category="Judgement of the cost model",
                labels={"tissue": "{tissue}", "content": "predicted against measured"},
            ),
            text=report(
                out("{tissue}/judge/judgement.md"),
                caption="../report/judge.rst",
                category="Judgement of the cost model",
                labels={"tissue": "{tissue}", "content": "judgement"},
            ),
        log:
            out("logs/judge/judge-{tissue}.log"),
        localrule: True
        conda:
            "../../envs/chunkatlas.yaml"
        resources:
            mem_mb=1000,
            runtime=10,
        params:
            names=remote_folders(),
            model=config["judge"]["model"],
        script:
            "../../scripts/judge.py"
