"""Snakemake entry point: the final model's bundle.json with the cross-validated figures."""

from pathlib import Path

from deepser.bundle import finish_bundle
from deepser.workflow.rulelog import rule_log

sm = snakemake  # noqa: F821 (injected by the script directive)
with rule_log(sm):
    finish_bundle(sm.input.base, sm.input.metrics, Path(sm.output.bundle).parent)
