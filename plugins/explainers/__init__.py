"""Explainer plugins (paper sections 3.3-3.5)."""
