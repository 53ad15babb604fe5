# H5 databases: context windows, labels and folds from cached feature shards.


rule build_database:
    input:
        unpack(db_inputs),
        code=code("build_database.py"),
    output:
        db=f"{RESULTS}/db/{{database}}.h5",
        rejected=f"{RESULTS}/db/{{database}}.rejected.tsv",
    log:
        f"{RESULTS}/logs/build_database/{{database}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/build_database/{{database}}.tsv"
    conda:
        "../envs/deepser.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb(2000),
        runtime=120,
    params:
        corpora=db_params,
        db=lambda w: DATABASES[w.database],
    script:
        "../scripts/build_database.py"
