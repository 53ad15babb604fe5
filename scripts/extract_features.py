"""Snakemake entry point: features of one shard of a corpus into an H5 shard file."""

from deepser.extraction import extract_shard
from deepser.files import read_json
from deepser.gain import resolve_gain
from deepser.workflow import rule_log

sm = snakemake  # noqa: F821 (injected by the script directive)
with rule_log(sm) as log:
    stats = read_json(sm.input.gain[0]) if sm.input.gain else None
    gain = resolve_gain(sm.params.gain, stats)
    log.info("feature spec %s, gain %s, %d utterances", sm.params.spec, gain, len(sm.params.rows))
    extract_shard(
        sm.params.rows,
        sm.params.spec,
        gain,
        sm.output[0],
        sm.params.on_bad_audio,
        augment=sm.params.augment,
    )
