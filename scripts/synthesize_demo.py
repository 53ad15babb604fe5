"""Snakemake entry point: write the embedded demo corpus."""

from pathlib import Path

from deepser.corpus.demo import synthesize_corpus
from deepser.workflow.rulelog import rule_log

sm = snakemake  # noqa: F821 (injected by the script directive)
with rule_log(sm) as log:
    meta = synthesize_corpus(
        Path(sm.output.meta).parent,
        seed=sm.params.seed,
        n_speakers=sm.params.n_speakers,
        utterances_per_emotion=sm.params.utterances_per_emotion,
        room=sm.params.get("room"),
    )
    log.info("demo corpus written: %s", meta)
