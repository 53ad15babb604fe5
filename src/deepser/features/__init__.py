"""Feature extraction (the workflow's second stage, ``rules/features.smk``): spectral
primitives, the feature-type registry, utterance-level functionals, waveform augmentation, and
the per-shard extraction into feature shards."""
