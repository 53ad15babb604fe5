"""Snakemake entry point: the final model on all speakers, saved as the model bundle."""

from pathlib import Path

from deepser.training.final import train_final
from deepser.workflow.rulelog import rule_log

sm = snakemake  # noqa: F821 (injected by the script directive)
with rule_log(sm):
    train_final(
        sm.wildcards.experiment,
        sm.params.experiment,
        sm.input.db,
        sm.input.trainings,
        sm.input.metrics,
        Path(sm.output.bundle).parent,
        threads=sm.threads,
        init_model=sm.input.get("init"),
    )
