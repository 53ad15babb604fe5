"""Snakemake entry point: train a fresh model for one cross-validation fold."""

from pathlib import Path

from deepser.training.train import train
from deepser.workflow.rulelog import rule_log

sm = snakemake  # noqa: F821 (injected by the script directive)
with rule_log(sm):
    train(
        sm.input.db,
        sm.params.experiment,
        int(sm.wildcards.fold),
        Path(sm.output.model).parent,
        threads=sm.threads,
        init_model=sm.input.get("init"),
    )
