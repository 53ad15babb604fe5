"""Snakemake entry point: features of one shard of a corpus into an H5 shard file."""

from deepser.corpus.manifest import read_manifest
from deepser.features.extraction import extract_shard, shard_gain
from deepser.workflow.rulelog import rule_log

sm = snakemake  # noqa: F821 (injected by the script directive)
with rule_log(sm) as log:
    settings = sm.params.extraction
    gain = shard_gain(settings["gain"], sm.input.gain[0] if sm.input.gain else None)
    entries = read_manifest(sm.input.manifest)
    log.info("feature spec %s, gain %s, %d utterances", settings["spec"], gain, len(entries))
    extract_shard(
        [(e.utt_id, e.audio) for e in entries],
        settings["spec"],
        gain,
        sm.output[0],
        settings["on_bad_audio"],
        augment=settings["augment"],
        states={e.utt_id: e.state for e in entries},
    )
