"""Snakemake entry point: pooled metrics, plots and the HTML report of an experiment."""

from pathlib import Path

from deepser.evaluation.summary import summarize
from deepser.workflow.rulelog import rule_log

sm = snakemake  # noqa: F821 (injected by the script directive)
with rule_log(sm):
    folds = [Path(p).parent for p in sm.input.metrics]  # in fold order
    summarize(
        sm.wildcards.experiment,
        sm.params.experiment,
        sm.input.db,
        folds,
        sm.input.rejected,
        Path(sm.output.metrics).parent,
        baseline=sm.input.baseline or None,
        evaluation=sm.params.evaluation,
        metas=dict(zip(sm.params.corpora, sm.input.metas, strict=True)),
        robustness=sm.input.robustness or None,
        cross_corpus=dict(zip(sm.params.cross_corpus, sm.input.cross_corpus, strict=True)),
    )
