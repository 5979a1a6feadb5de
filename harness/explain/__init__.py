"""Explanations: capture and resampling of maps, sanity checks, faithfulness."""
