"""Snakemake entry point: merge per-shard gain statistics (reduce step)."""

from deepser.corpus.gain import merge_stats, read_stat_files
from deepser.files import write_json
from deepser.workflow.rulelog import rule_log

sm = snakemake  # noqa: F821 (injected by the script directive)
with rule_log(sm) as log:
    merged = merge_stats(read_stat_files(sm.input.shards))
    merged["sample_rate"] = int(sm.wildcards.rate)
    write_json(sm.output[0], merged)
    log.info("%s", merged)
