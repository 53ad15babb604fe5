"""Test helpers: a real single-node SLURM on localhost, and the small reference workflow."""
