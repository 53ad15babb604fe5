"""Snakemake entry point: the final model on all speakers (its bundle.json: rule bundle)."""

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
        Path(sm.output.model).parent,
        sm.output.base,
        threads=sm.threads,
        init_model=sm.input.get("init"),
    )
