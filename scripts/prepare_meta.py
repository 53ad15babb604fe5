"""Snakemake entry point: validate a corpus meta file and write the normalised meta."""

import pandas as pd

from deepser.corpus.manifest import write_manifests
from deepser.corpus.meta import CorpusSpec, read_meta
from deepser.files import write_json, write_tsv
from deepser.workflow.rulelog import rule_log

sm = snakemake  # noqa: F821 (injected by the script directive)
with rule_log(sm) as log:
    spec = CorpusSpec.from_config(sm.wildcards.corpus, sm.params.corpus)
    result = read_meta(spec, workers=sm.threads)
    write_tsv(sm.output.meta, result.table)
    write_json(sm.output.vocab, result.vocab, sort_keys=False)  # keeps the column order
    columns = ["utt_id", "audio", "line", "stage", "reason"]
    write_tsv(sm.output.rejected, pd.DataFrame(result.rejected, columns=columns))
    table = result.table
    rows = zip(table["utt_id"], table["audio"], table["shard"], strict=True)
    write_manifests(sm.output.shards, list(rows), spec.n_shards, result.states)
    log.info(
        "%d utterances, %d rejected; vocabularies: %s",
        len(result.table),
        len(result.rejected),
        result.vocab,
    )
