"""Snakemake entry point: a database's copy with every utterance's audio degraded."""

from pathlib import Path

from deepser.database.build import CorpusInput
from deepser.evaluation.robustness import build_degraded_database
from deepser.workflow.rulelog import rule_log

sm = snakemake  # noqa: F821 (injected by the script directive)
with rule_log(sm) as log:
    corpora = [
        CorpusInput(
            name=name,
            meta=Path(sm.input.meta[i]),
            vocab=Path(sm.input.vocab[i]),
            rejected=Path(sm.input.rejected[i]),
            shards=tuple(Path(f"shard-{k}") for k in range(n_shards)),  # extracted again
        )
        for i, (name, n_shards) in enumerate(sm.params.corpora)
    ]
    attrs = build_degraded_database(
        sm.input.clean,
        corpora,
        sm.params.db,
        sm.wildcards.condition,
        sm.output[0],
        seed=sm.params.seed,
    )
    log.info("built %s: %d utterances", sm.output[0], attrs["n_utterances"])
