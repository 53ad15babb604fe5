"""Snakemake entry point: build one H5 database from cached feature shards."""

from pathlib import Path

from deepser.database.build import CorpusInput, build_database
from deepser.workflow.rulelog import rule_log

sm = snakemake  # noqa: F821 (injected by the script directive)
with rule_log(sm) as log:
    corpora, offset = [], 0
    for i, (name, n_shards) in enumerate(sm.params.corpora):
        corpora.append(
            CorpusInput(
                name=name,
                meta=Path(sm.input.meta[i]),
                vocab=Path(sm.input.vocab[i]),
                rejected=Path(sm.input.rejected[i]),
                shards=tuple(Path(p) for p in sm.input.shards[offset : offset + n_shards]),
            )
        )
        offset += n_shards
    attrs = build_database(corpora, sm.params.db, sm.output.db, sm.output.rejected)
    log.info("built %s: %d utterances", sm.output.db, attrs["n_utterances"])
