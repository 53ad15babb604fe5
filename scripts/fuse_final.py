"""Snakemake entry point: the fused bundle (member bundles + the final combiner)."""

from pathlib import Path

from deepser.evaluation.fusion import write_fused_bundle
from deepser.workflow.rulelog import rule_log

sm = snakemake  # noqa: F821 (injected by the script directive)
with rule_log(sm):
    members = dict(zip(sm.params.members, [Path(b).parent for b in sm.input.bundles], strict=True))
    write_fused_bundle(sm.input.fusion, sm.input.metrics, members, Path(sm.output.bundle).parent)
