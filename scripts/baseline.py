"""Snakemake entry point: the classic baseline (linear classifier on functionals) of a database."""

from pathlib import Path

from deepser.evaluation.baseline import run_baseline
from deepser.workflow.rulelog import rule_log

sm = snakemake  # noqa: F821 (injected by the script directive)
with rule_log(sm):
    corpora = list(sm.params.corpora)
    shards = {c: [p for p in sm.input.shards if f"/corpora/{c}/" in p] for c in corpora}
    settings = {k: v for k, v in sm.params.settings.items() if k != "feature_set"}
    run_baseline(sm.input.db, shards, settings, Path(sm.output.metrics).parent)
