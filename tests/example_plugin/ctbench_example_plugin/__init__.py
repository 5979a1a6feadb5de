"""Example third-party ctbench plugins: the smallest plugin of each kind that the docs allow.

One module per kind, each with its own entry point (``pyproject.toml``), so that an author can
copy one file, change what it computes, and keep the rest: ``architecture`` (a model without a
trunk split), ``explainer``, ``dataset`` (a handful of generated cases, with and without finding
masks), ``segmenter`` and ``downsampler``. docs/plugins/ walks through each.
"""
