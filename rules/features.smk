# Feature extraction, one job per (corpus, feature set, shard).


rule extract_features:
    input:
        manifest=shard_manifest,
        gain=gain_input,
        code=code("extract_features.py"),
    output:
        f"{RESULTS}/corpora/{{corpus}}/features/{{featureset}}/shard-{{shard}}.h5",
    log:
        f"{RESULTS}/logs/extract_features/{{corpus}}/{{featureset}}/shard-{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/extract_features/{{corpus}}/{{featureset}}/shard-{{shard}}.tsv"
    conda:
        "../envs/deepser.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb(2000),
        runtime=120,
    params:
        extraction=lambda w: extraction_settings(w.corpus, w.featureset),
    script:
        "../scripts/extract_features.py"
