# Results derived from experiments: the classic baseline of each database, inner folds,
# late fusion and model selection without peeking.


rule baseline:
    input:
        db=f"{RESULTS}/db/{{database}}.h5",
        shards=baseline_shards,
        code=code("baseline.py"),
    output:
        metrics=f"{RESULTS}/baselines/{{database}}/metrics.json",
        predictions=f"{RESULTS}/baselines/{{database}}/predictions.csv",
    log:
        f"{RESULTS}/logs/baseline/{{database}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/baseline/{{database}}.tsv"
    conda:
        "../envs/deepser.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb(3000),
        runtime=60,
    params:
        settings=lambda w: baseline_settings(config, w.database),
        corpora=db_corpora,
    script:
        "../scripts/baseline.py"


rule inner_fold:
    input:
        unpack(init_model),
        db=experiment_db,
        code=code("inner_fold.py"),
    output:
        predictions=f"{RESULTS}/experiments/{{experiment}}/fold-{{fold}}/inner-{{n_inner}}.csv",
    log:
        f"{RESULTS}/logs/inner_fold/{{experiment}}/fold-{{fold}}-inner-{{n_inner}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/inner_fold/{{experiment}}/fold-{{fold}}-inner-{{n_inner}}.tsv"
    conda:
        "../envs/deepser.yaml"
    threads: 2
    resources:
        mem_mb=mem_mb(4000),
        runtime=480,
        gpu=lambda w: EXPERIMENTS[w.experiment].get("gpu", 0),
    params:
        experiment=lambda w: EXPERIMENTS[w.experiment],
        n_inner=lambda w: int(w.n_inner),
    script:
        "../scripts/inner_fold.py"


rule fuse:
    input:
        predictions=member_files("fusion", "members", "predictions.csv"),
        strict=member_files("fusion", "members", "strict_predictions.csv"),
        trainings=member_files("fusion", "members", "training.json"),
        inner=fusion_inner,
        code=code("fuse.py"),
    output:
        metrics=report(
            f"{RESULTS}/fusions/{{fusion}}/metrics.json",
            category="{fusion}",
            labels={"what": "fused metrics"},
        ),
        report=report(
            f"{RESULTS}/fusions/{{fusion}}/report.html",
            category="{fusion}",
            labels={"what": "fusion report"},
        ),
        fusion=f"{RESULTS}/fusions/{{fusion}}/fusion.json",
        predictions=f"{RESULTS}/fusions/{{fusion}}/predictions.csv",
        strict=f"{RESULTS}/fusions/{{fusion}}/strict_predictions.csv",
    log:
        f"{RESULTS}/logs/fuse/{{fusion}}.log",
    localrule: True
    conda:
        "../envs/deepser.yaml"
    params:
        fusion=lambda w: FUSIONS[w.fusion],
        evaluation=config["evaluation"],
    script:
        "../scripts/fuse.py"


rule fuse_final:
    input:
        fusion=rules.fuse.output.fusion,
        metrics=rules.fuse.output.metrics,
        bundles=lambda w: expand(
            f"{RESULTS}/experiments/{{m}}/final/bundle.json",
            m=FUSIONS[w.fusion]["members"],
        ),
        models=lambda w: expand(
            f"{RESULTS}/experiments/{{m}}/final/model.keras",
            m=FUSIONS[w.fusion]["members"],
        ),
        code=code("fuse_final.py"),
    output:
        bundle=f"{RESULTS}/fusions/{{fusion}}/final/bundle.json",
        members=directory(f"{RESULTS}/fusions/{{fusion}}/final/members"),
    log:
        f"{RESULTS}/logs/fuse_final/{{fusion}}.log",
    localrule: True
    conda:
        "../envs/deepser.yaml"
    params:
        members=lambda w: FUSIONS[w.fusion]["members"],
    script:
        "../scripts/fuse_final.py"


rule select:
    input:
        predictions=member_files("selection", "candidates", "predictions.csv"),
        strict=member_files("selection", "candidates", "strict_predictions.csv"),
        trainings=member_files("selection", "candidates", "training.json"),
        inner=member_files("selection", "candidates", "inner"),
        code=code("select_model.py"),
    output:
        metrics=report(
            f"{RESULTS}/selections/{{selection}}/metrics.json",
            category="{selection}",
            labels={"what": "nested cross-validation metrics"},
        ),
        report=report(
            f"{RESULTS}/selections/{{selection}}/report.html",
            category="{selection}",
            labels={"what": "selection report"},
        ),
        selection=f"{RESULTS}/selections/{{selection}}/selection.json",
        predictions=f"{RESULTS}/selections/{{selection}}/predictions.csv",
        strict=f"{RESULTS}/selections/{{selection}}/strict_predictions.csv",
    log:
        f"{RESULTS}/logs/select/{{selection}}.log",
    localrule: True
    conda:
        "../envs/deepser.yaml"
    params:
        selection=lambda w: SELECTIONS[w.selection],
        evaluation=config["evaluation"],
    script:
        "../scripts/select_model.py"


rule select_final:
    input:
        selection=rules.select.output.selection,
        bundles=lambda w: expand(
            f"{RESULTS}/experiments/{{m}}/final/bundle.json",
            m=SELECTIONS[w.selection]["candidates"],
        ),
        models=lambda w: expand(
            f"{RESULTS}/experiments/{{m}}/final/model.keras",
            m=SELECTIONS[w.selection]["candidates"],
        ),
        code=code("select_final.py"),
    output:
        bundle=f"{RESULTS}/selections/{{selection}}/final/bundle.json",
        model=f"{RESULTS}/selections/{{selection}}/final/model.keras",
    log:
        f"{RESULTS}/logs/select_final/{{selection}}.log",
    localrule: True
    conda:
        "../envs/deepser.yaml"
    params:
        candidates=lambda w: SELECTIONS[w.selection]["candidates"],
    script:
        "../scripts/select_final.py"
