"""Mask downsampler plugins (paper Table 5)."""
