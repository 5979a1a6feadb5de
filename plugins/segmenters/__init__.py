"""Organ segmenter plugins (paper appendix 7.2.2)."""
