"""Glue between the Snakemake workflow and the library (nothing in the library imports it):
config cross-checks (:mod:`~deepser.workflow.config`), the library inputs of each rule's script
(:mod:`~deepser.workflow.code`) and the rule log (:mod:`~deepser.workflow.rulelog`)."""
