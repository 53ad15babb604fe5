"""Snakemake entry point: features of one shard of a corpus into an H5 shard file."""

from deepser.features.extraction import extract_shard, shard_gain
from deepser.workflow.rulelog import rule_log

sm = snakemake  # noqa: F821 (injected by the script directive)
with rule_log(sm) as log:
    gain = shard_gain(sm.params.gain, sm.input.gain[0] if sm.input.gain else None)
    log.info("feature spec %s, gain %s, %d utterances", sm.params.spec, gain, len(sm.params.rows))
    extract_shard(
        sm.params.rows,
        sm.params.spec,
        gain,
        sm.output[0],
        sm.params.on_bad_audio,
        augment=sm.params.augment,
    )
