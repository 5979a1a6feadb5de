"""ctbench's built-in plugins, one module per family, declared as entry points in pyproject.toml
exactly as a third-party package declares its own."""
