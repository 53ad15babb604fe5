"""H5 databases (the workflow's third stage, ``rules/database.smk``): the format with its writer
and readers, context windows, folds, per-speaker normalisation statistics, and the build from
feature shards."""
