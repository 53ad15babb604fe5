"""Evaluation (after training, ``rules/training.smk``): each fold's predictions and metrics,
the cross-validated summary with plots and the HTML report, and the comparison of experiments.
The metric functions themselves are :mod:`deepser.metrics` (training uses them too)."""
