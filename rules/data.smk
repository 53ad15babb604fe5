# Corpus preparation: the demo corpus, meta validation, gain statistics.


if "demo_corpus" in config:

    rule synthesize_demo:
        input:
            code=code("synthesize_demo.py"),
        output:
            meta=f"{config['demo_corpus']['dir']}/meta.tsv",
        log:
            f"{RESULTS}/logs/synthesize_demo.log",
        benchmark:
            f"{RESULTS}/benchmarks/synthesize_demo.tsv"
        localrule: True  # a few seconds of synthesis: not worth a cluster job
        conda:
            "../envs/deepser.yaml"
        threads: 1
        resources:
            mem_mb=mem_mb(1000),
            runtime=10,
        params:
            seed=config["demo_corpus"].get("seed", 7),
            n_speakers=config["demo_corpus"].get("n_speakers", 8),
            utterances_per_emotion=config["demo_corpus"].get(
                "utterances_per_emotion", 10
            ),
        script:
            "../scripts/synthesize_demo.py"


if "unseen" in config.get("demo_corpus", {}):
    UNSEEN = config["demo_corpus"]["unseen"]

    rule synthesize_demo_unseen:
        input:
            code=code("synthesize_demo.py"),
        output:
            meta=f"{UNSEEN['dir']}/meta.tsv",
        log:
            f"{RESULTS}/logs/synthesize_demo_unseen.log",
        localrule: True
        conda:
            "../envs/deepser.yaml"
        params:
            seed=UNSEEN["seed"],
            n_speakers=UNSEEN["n_speakers"],
            utterances_per_emotion=UNSEEN["utterances_per_emotion"],
            room=UNSEEN["room"],
        script:
            "../scripts/synthesize_demo.py"


checkpoint prepare_meta:
    input:
        meta=lambda w: CORPORA[w.corpus]["meta"],
        code=code("prepare_meta.py"),
    output:
        meta=f"{RESULTS}/corpora/{{corpus}}/meta.tsv",
        vocab=f"{RESULTS}/corpora/{{corpus}}/vocab.json",
        rejected=f"{RESULTS}/corpora/{{corpus}}/rejected.tsv",
        shards=directory(f"{RESULTS}/corpora/{{corpus}}/shards"),  # one manifest per shard
    log:
        f"{RESULTS}/logs/prepare_meta/{{corpus}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prepare_meta/{{corpus}}.tsv"
    conda:
        "../envs/deepser.yaml"
    threads: meta_threads  # audio headers are checked in parallel on large corpora
    resources:
        mem_mb=mem_mb(2000),
        runtime=30,
    params:
        corpus=lambda w: CORPORA[w.corpus],
    script:
        "../scripts/prepare_meta.py"


rule gain_stats:
    input:
        manifest=shard_manifest,
        code=code("gain_stats.py"),
    output:
        f"{RESULTS}/corpora/{{corpus}}/gain/sr{{rate}}/shard-{{shard}}.json",
    log:
        f"{RESULTS}/logs/gain_stats/{{corpus}}/sr{{rate}}/shard-{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/gain_stats/{{corpus}}/sr{{rate}}/shard-{{shard}}.tsv"
    conda:
        "../envs/deepser.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb(1000),
        runtime=60,
    script:
        "../scripts/gain_stats.py"


rule merge_gain:
    input:
        shards=gain_shards,
        code=code("merge_gain.py"),
    output:
        f"{RESULTS}/corpora/{{corpus}}/gain/sr{{rate}}.json",
    log:
        f"{RESULTS}/logs/merge_gain/{{corpus}}/sr{{rate}}.log",
    localrule: True
    conda:
        "../envs/deepser.yaml"
    script:
        "../scripts/merge_gain.py"
