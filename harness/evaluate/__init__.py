"""Scoring: predictions and explanations of a split, metrics, localisation, bootstrap,
statistics."""
