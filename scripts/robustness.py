"""Snakemake entry point: each fold model on its test speakers' degraded audio."""

from pathlib import Path

from deepser.evaluation.robustness import evaluate_robustness
from deepser.runtime import configure_backend
from deepser.workflow.rulelog import rule_log

sm = snakemake  # noqa: F821 (injected by the script directive)
with rule_log(sm) as log:
    configure_backend(sm.threads, 0)
    found = evaluate_robustness(
        [Path(p).parent for p in sm.input.models],
        dict(zip(sm.params.conditions, sm.input.degraded, strict=True)),
        sm.output.json,
        sm.output.predictions,
    )
    log.info("%s", found)
