"""Snakemake entry point: compare the configured experiments side by side."""

from deepser.evaluation.summary import compare
from deepser.workflow.rulelog import rule_log

sm = snakemake  # noqa: F821 (injected by the script directive)
with rule_log(sm):
    compare(
        dict(zip(sm.params.names, sm.input.metrics, strict=True)), sm.output.html, sm.output.plot
    )
