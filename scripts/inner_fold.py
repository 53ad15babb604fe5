"""Snakemake entry point: inner cross-validation inside one outer fold (selection, fusion)."""

from deepser.evaluation.inner import inner_predictions
from deepser.workflow.rulelog import rule_log

sm = snakemake  # noqa: F821 (injected by the script directive)
with rule_log(sm):
    inner_predictions(
        sm.input.db,
        sm.params.experiment,
        int(sm.wildcards.fold),
        int(sm.params.n_inner),
        sm.output.predictions,
        threads=sm.threads,
        init_model=sm.input.get("init"),
    )
