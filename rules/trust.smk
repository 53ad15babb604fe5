# How far the figures can be trusted beyond the folds: degraded copies of the test audio,
# other corpora, and the model card of every bundle.


rule build_degraded_database:
    input:
        unpack(degraded_inputs),
        code=code("build_degraded_database.py"),
    output:
        f"{RESULTS}/db/degraded/{{database}}/{{condition}}.h5",
    log:
        f"{RESULTS}/logs/build_degraded_database/{{database}}/{{condition}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/build_degraded_database/{{database}}/{{condition}}.tsv"
    conda:
        "../envs/deepser.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb(2000),
        runtime=120,
    params:
        corpora=db_params,
        db=lambda w: DATABASES[w.database],
        seed=ROBUSTNESS.get("seed", 0),
    script:
        "../scripts/build_degraded_database.py"


rule robustness:
    input:
        models=fold_files("model.keras"),
        trainings=fold_files("training.json"),
        predictions=fold_files("predictions.csv"),
        degraded=degraded_databases,
        code=code("robustness.py"),
    output:
        json=f"{RESULTS}/experiments/{{experiment}}/robustness.json",
        predictions=f"{RESULTS}/experiments/{{experiment}}/robustness_predictions.csv",
    log:
        f"{RESULTS}/logs/robustness/{{experiment}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/robustness/{{experiment}}.tsv"
    conda:
        "../envs/deepser.yaml"
    threads: 2
    resources:
        mem_mb=mem_mb(3000),
        runtime=60,
    params:
        conditions=CONDITIONS,
    script:
        "../scripts/robustness.py"


rule cross_corpus:
    input:
        unpack(cross_corpus_inputs),
        code=code("cross_corpus.py"),
    output:
        metrics=f"{RESULTS}/cross_corpus/{{cross}}/metrics.json",
        predictions=f"{RESULTS}/cross_corpus/{{cross}}/predictions.csv",
    log:
        f"{RESULTS}/logs/cross_corpus/{{cross}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/cross_corpus/{{cross}}.tsv"
    conda:
        "../envs/deepser.yaml"
    threads: 2
    resources:
        mem_mb=mem_mb(3000),
        runtime=60,
    params:
        entry=lambda w: CROSS_CORPUS[w.cross],
        evaluation=config["evaluation"],
    script:
        "../scripts/cross_corpus.py"


rule model_card:
    input:
        bundle=f"{RESULTS}/experiments/{{experiment}}/final/bundle.json",
        metrics=f"{RESULTS}/experiments/{{experiment}}/metrics.json",
        code=code("model_card.py"),
    output:
        f"{RESULTS}/experiments/{{experiment}}/final/model_card.md",
    log:
        f"{RESULTS}/logs/model_card/{{experiment}}.log",
    localrule: True  # a page of Markdown
    conda:
        "../envs/deepser.yaml"
    params:
        name=lambda w: w.experiment,
    script:
        "../scripts/model_card.py"


rule combination_card:
    input:
        bundle=f"{RESULTS}/{{kind}}/{{name}}/final/bundle.json",
        metrics=f"{RESULTS}/{{kind}}/{{name}}/metrics.json",
        code=code("model_card.py"),
    output:
        f"{RESULTS}/{{kind}}/{{name}}/final/model_card.md",
    log:
        f"{RESULTS}/logs/model_card/{{kind}}/{{name}}.log",
    wildcard_constraints:
        kind="fusions|selections",
    localrule: True
    conda:
        "../envs/deepser.yaml"
    params:
        name=lambda w: w.name,
    script:
        "../scripts/model_card.py"
