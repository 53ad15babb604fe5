"""Snakemake entry point: late fusion of experiments' predictions, fold by fold."""

from pathlib import Path

from deepser.evaluation.combine import by_member, member_tasks
from deepser.evaluation.fusion import fuse
from deepser.workflow.rulelog import rule_log

sm = snakemake  # noqa: F821 (injected by the script directive)
with rule_log(sm):
    members = list(sm.params.fusion["members"])
    fuse(
        sm.wildcards.fusion,
        sm.params.fusion,
        member_tasks(by_member(members, sm.input.trainings)),
        by_member(members, sm.input.predictions),
        by_member(members, sm.input.strict),
        by_member(members, sm.input.inner) if len(sm.input.inner) else None,
        Path(sm.output.metrics).parent,
        evaluation=sm.params.evaluation,
    )
