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
        spec=lambda w: feature_spec(config, w.featureset),
        gain=lambda w: gain_config(config, w.featureset),
        on_bad_audio=lambda w: CORPORA[w.corpus].get("on_bad_audio", "fail"),
        augment=lambda w: augment_config(config, w.featureset),
    script:
        "../scripts/extract_features.py"
