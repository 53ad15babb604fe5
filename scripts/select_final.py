"""Snakemake entry point: the selection's final bundle (the chosen candidate's)."""

from pathlib import Path

from deepser.evaluation.selection import copy_final
from deepser.workflow.rulelog import rule_log

sm = snakemake  # noqa: F821 (injected by the script directive)
with rule_log(sm):
    bundles = dict(zip(sm.params.candidates, sm.input.bundles, strict=True))
    copy_final(sm.input.selection, bundles, Path(sm.output.bundle).parent)
