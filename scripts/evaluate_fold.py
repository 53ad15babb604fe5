"""Snakemake entry point: predict a fold's test speakers, write predictions and metrics."""

from deepser.evaluation.fold import evaluate_fold
from deepser.runtime import configure_backend
from deepser.workflow.rulelog import rule_log

sm = snakemake  # noqa: F821 (injected by the script directive)
with rule_log(sm) as log:
    configure_backend(sm.threads, 0)
    metrics = evaluate_fold(
        sm.input.db,
        sm.input.model,
        sm.input.training,
        int(sm.wildcards.fold),
        sm.output.predictions,
        sm.output.metrics,
        sm.output.strict,
        sm.output.validation,
    )
    log.info("%s", metrics)
