# Per-fold training and evaluation, the experiment summary with its report, the final bundle.


rule train_fold:
    input:
        unpack(init_model),
        db=experiment_db,
        code=code("train_fold.py"),
    output:
        model=f"{RESULTS}/experiments/{{experiment}}/fold-{{fold}}/model.keras",
        history=f"{RESULTS}/experiments/{{experiment}}/fold-{{fold}}/history.csv",
        training=f"{RESULTS}/experiments/{{experiment}}/fold-{{fold}}/training.json",
    log:
        f"{RESULTS}/logs/train_fold/{{experiment}}/fold-{{fold}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_fold/{{experiment}}/fold-{{fold}}.tsv"
    conda:
        "../envs/deepser.yaml"
    threads: 2
    resources:
        mem_mb=mem_mb(4000),
        runtime=240,
        gpu=lambda w: EXPERIMENTS[w.experiment].get("gpu", 0),
    params:
        experiment=lambda w: EXPERIMENTS[w.experiment],
    script:
        "../scripts/train_fold.py"


rule evaluate_fold:
    input:
        db=experiment_db,
        model=rules.train_fold.output.model,
        training=rules.train_fold.output.training,
        code=code("evaluate_fold.py"),
    output:
        predictions=f"{RESULTS}/experiments/{{experiment}}/fold-{{fold}}/predictions.csv",
        metrics=f"{RESULTS}/experiments/{{experiment}}/fold-{{fold}}/metrics.json",
        strict=f"{RESULTS}/experiments/{{experiment}}/fold-{{fold}}/strict_predictions.csv",
        validation=f"{RESULTS}/experiments/{{experiment}}/fold-{{fold}}/validation_predictions.csv",
    log:
        f"{RESULTS}/logs/evaluate_fold/{{experiment}}/fold-{{fold}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate_fold/{{experiment}}/fold-{{fold}}.tsv"
    conda:
        "../envs/deepser.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb(3000),
        runtime=60,
    script:
        "../scripts/evaluate_fold.py"


rule summarize:
    input:
        db=experiment_db,
        rejected=experiment_db_rejected,
        metrics=fold_files("metrics.json"),
        predictions=fold_files("predictions.csv"),
        strict=fold_files("strict_predictions.csv"),
        baseline=experiment_baseline,
        histories=fold_files("history.csv"),
        trainings=fold_files("training.json"),
        validation=fold_files("validation_predictions.csv"),
        metas=experiment_metas,
        robustness=experiment_robustness,
        cross_corpus=experiment_cross_corpus,
        code=code("summarize.py"),
    output:
        predictions=f"{RESULTS}/experiments/{{experiment}}/predictions.csv",
        metrics=report(
            f"{RESULTS}/experiments/{{experiment}}/metrics.json",
            category="{experiment}",
            labels={"what": "cross-validated metrics"},
        ),
        report=report(
            f"{RESULTS}/experiments/{{experiment}}/report.html",
            category="{experiment}",
            labels={"what": "experiment report"},
        ),
        plots=report(
            directory(f"{RESULTS}/experiments/{{experiment}}/plots"),
            patterns=["{name}.png"],
            category="{experiment}",
            labels={"what": "{name}"},
        ),
    log:
        f"{RESULTS}/logs/summarize/{{experiment}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/summarize/{{experiment}}.tsv"
    localrule: True  # reads the folds' small outputs, writes plots: not worth a cluster job
    conda:
        "../envs/deepser.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb(2000),
        runtime=30,
    params:
        experiment=lambda w: EXPERIMENTS[w.experiment],
        evaluation=config["evaluation"],
        corpora=lambda w: DATABASES[EXPERIMENTS[w.experiment]["database"]]["corpora"],
        cross_corpus=lambda w: cross_corpus_of(w.experiment),
    script:
        "../scripts/summarize.py"


rule train_final:
    input:
        unpack(init_model),
        db=experiment_db,
        trainings=fold_files("training.json"),
        code=code("train_final.py"),
    output:
        model=f"{RESULTS}/experiments/{{experiment}}/final/model.keras",
        base=f"{RESULTS}/experiments/{{experiment}}/final_bundle_base.json",
    log:
        f"{RESULTS}/logs/train_final/{{experiment}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_final/{{experiment}}.tsv"
    conda:
        "../envs/deepser.yaml"
    threads: 2
    resources:
        mem_mb=mem_mb(4000),
        runtime=240,
        gpu=lambda w: EXPERIMENTS[w.experiment].get("gpu", 0),
    params:
        experiment=lambda w: EXPERIMENTS[w.experiment],
    script:
        "../scripts/train_final.py"


rule bundle:
    input:
        base=rules.train_final.output.base,
        model=rules.train_final.output.model,
        metrics=rules.summarize.output.metrics,
        code=code("write_bundle.py"),
    output:
        bundle=f"{RESULTS}/experiments/{{experiment}}/final/bundle.json",
    log:
        f"{RESULTS}/logs/bundle/{{experiment}}.log",
    localrule: True  # the final model's bundle.json with the cross-validated figures
    conda:
        "../envs/deepser.yaml"
    script:
        "../scripts/write_bundle.py"


rule compare_experiments:
    input:
        metrics=expand(
            f"{RESULTS}/experiments/{{experiment}}/metrics.json",
            experiment=EXPERIMENTS,
        )
        + expand(f"{RESULTS}/fusions/{{fusion}}/metrics.json", fusion=FUSIONS)
        + expand(
            f"{RESULTS}/selections/{{selection}}/metrics.json", selection=SELECTIONS
        ),
        predictions=expand(
            f"{RESULTS}/experiments/{{experiment}}/predictions.csv",
            experiment=EXPERIMENTS,
        )
        + expand(f"{RESULTS}/fusions/{{fusion}}/predictions.csv", fusion=FUSIONS)
        + expand(
            f"{RESULTS}/selections/{{selection}}/predictions.csv", selection=SELECTIONS
        ),
        code=code("compare_experiments.py"),
    output:
        html=report(
            f"{RESULTS}/experiments/comparison.html",
            category="comparison",
            labels={"what": "experiment comparison"},
        ),
        plot=report(
            f"{RESULTS}/experiments/comparison.png",
            category="comparison",
            labels={"what": "UA by experiment"},
        ),
    log:
        f"{RESULTS}/logs/compare_experiments.log",
    localrule: True
    conda:
        "../envs/deepser.yaml"
    params:
        names=list(EXPERIMENTS) + list(FUSIONS) + list(SELECTIONS),
        databases=result_databases(),
        evaluation=config["evaluation"],
    script:
        "../scripts/compare_experiments.py"
