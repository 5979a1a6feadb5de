"""Experiments: the run configuration and pipeline, run folders' results, matrices, comparisons,
studies, tracking."""
