"""The plugin contract: hooks, the registry, the public API, cases and the written contracts."""
