"""Training (the workflow's fourth stage, ``rules/training.smk``): fold splits, batches,
losses, learning-rate schedules, the fit loop, transfer learning, the per-fold model and the
final model bundle. Modules that need Keras import it inside their functions, after
:func:`deepser.runtime.configure_backend` has bound the backend's threads."""
