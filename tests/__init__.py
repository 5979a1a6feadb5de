"""ctbench test suite."""
