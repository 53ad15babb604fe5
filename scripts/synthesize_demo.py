"""Snakemake entry point: write the embedded demo corpus."""

from pathlib import Path

from deepser.demo_corpus import synthesize_corpus
from deepser.workflow import rule_log

with rule_log(snakemake) as log:  # noqa: F821 (snakemake is injected by the script directive)
    meta = synthesize_corpus(
        Path(snakemake.output.meta).parent,  # noqa: F821
        seed=snakemake.params.seed,  # noqa: F821
        n_speakers=snakemake.params.n_speakers,  # noqa: F821
        utterances_per_emotion=snakemake.params.utterances_per_emotion,  # noqa: F821
    )
    log.info("demo corpus written: %s", meta)
