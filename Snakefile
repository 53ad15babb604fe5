# deepser workflow: meta files -> features -> H5 databases -> per-fold models -> reports, bundles.
# Run with `make demo`, or `snakemake --cores all [--configfile my.yaml]`.
from snakemake.utils import min_version

min_version("9.20")


# config/config.yaml unless --configfile names others (which then replace it, not extend it)
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "rules/common.smk"


wildcard_constraints:
    corpus=alternatives(CORPORA),
    featureset=alternatives(FEATURE_SETS),
    database=alternatives(DATABASES),
    shard=r"\d+",
    rate=r"\d+",
    experiment=alternatives(EXPERIMENTS) or "no-experiment",
    fold=r"\d+",
    n_inner=r"\d+",
    fusion=alternatives(FUSIONS) or "no-fusion",
    selection=alternatives(SELECTIONS) or "no-selection",
    condition=alternatives(CONDITIONS) or "no-condition",
    cross=alternatives(CROSS_CORPUS) or "no-cross-corpus",
    script=alternatives(SCRIPT_NAMES),


include: "rules/code.smk"
include: "rules/data.smk"
include: "rules/features.smk"
include: "rules/database.smk"
include: "rules/training.smk"
include: "rules/combine.smk"
include: "rules/trust.smk"


rule all:
    default_target: True
    input:
        all_databases(),
        all_experiments(),
        model_cards(),
