"""Snakemake entry point: compare the configured experiments side by side."""

from deepser.evaluation.summary import compare
from deepser.workflow.rulelog import rule_log

sm = snakemake  # noqa: F821 (injected by the script directive)
with rule_log(sm):
    names = sm.params.names
    compare(
        dict(zip(names, sm.input.metrics, strict=True)),
        sm.output.html,
        sm.output.plot,
        predictions=dict(zip(names, sm.input.predictions, strict=True)),
        databases=sm.params.databases,
        evaluation=sm.params.evaluation,
    )
