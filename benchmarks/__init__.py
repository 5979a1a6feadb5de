"""ctbench benchmarks (pytest-benchmark); run with `python -m pytest benchmarks`."""
