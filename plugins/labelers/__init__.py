"""Built-in report labelers (docs/plugins/labelers.md)."""
