"""Snakemake entry point: waveform statistics of one shard (map step of the gain statistics)."""

from deepser.corpus.manifest import shard_rows
from deepser.features.extraction import gain_stats_for_shard
from deepser.files import write_json
from deepser.workflow.rulelog import rule_log

sm = snakemake  # noqa: F821 (injected by the script directive)
with rule_log(sm) as log:
    stats = gain_stats_for_shard(shard_rows(sm.input.manifest), int(sm.wildcards.rate))
    write_json(sm.output[0], stats)
    log.info("%s", stats)
