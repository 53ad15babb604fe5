"""Snakemake entry point: the model card next to a bundle's bundle.json."""

from deepser.model_card import write_model_card
from deepser.workflow.rulelog import rule_log

sm = snakemake  # noqa: F821 (injected by the script directive)
with rule_log(sm):
    write_model_card(sm.input.bundle, sm.input.metrics, sm.output[0], name=sm.params.name)
