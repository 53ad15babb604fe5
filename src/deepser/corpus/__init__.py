"""Corpus preparation (the workflow's first stage, ``rules/data.smk``): meta files, audio
loading, gain statistics and normalisation, and the embedded demo corpus."""
