"""Architecture plugins (paper Table 1), one module per model family."""
