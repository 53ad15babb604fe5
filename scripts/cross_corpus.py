"""Snakemake entry point: an experiment's fold models on another corpus."""

from pathlib import Path

from deepser.evaluation.cross_corpus import evaluate_cross_corpus
from deepser.runtime import configure_backend
from deepser.workflow.rulelog import rule_log

sm = snakemake  # noqa: F821 (injected by the script directive)
with rule_log(sm) as log:
    configure_backend(sm.threads, 0)
    settings = sm.params.evaluation
    found = evaluate_cross_corpus(
        [Path(p).parent for p in sm.input.models],
        sm.input.db,
        sm.params.entry["labels"],
        sm.output.metrics,
        sm.output.predictions,
        name=sm.wildcards.cross,
        n_boot=settings["bootstrap"],
        level=settings["level"],
        seed=settings["seed"],
    )
    log.info("%s", found)
