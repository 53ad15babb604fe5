"""Snakemake entry point: model selection on inner folds (nested cross-validation)."""

from pathlib import Path

from deepser.evaluation.combine import by_member, member_tasks
from deepser.evaluation.selection import select
from deepser.workflow.rulelog import rule_log

sm = snakemake  # noqa: F821 (injected by the script directive)
with rule_log(sm):
    candidates = list(sm.params.selection["candidates"])
    select(
        sm.wildcards.selection,
        sm.params.selection,
        member_tasks(by_member(candidates, sm.input.trainings)),
        by_member(candidates, sm.input.predictions),
        by_member(candidates, sm.input.strict),
        by_member(candidates, sm.input.inner),
        Path(sm.output.metrics).parent,
        evaluation=sm.params.evaluation,
    )
