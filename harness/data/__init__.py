"""From files to model-ready volumes: readers, real-data sources, preprocessing, augmentation,
caches, loaders.

``ctbench.data`` was a module (now ``ctbench.data.loader``): its names still resolve here, with a
DeprecationWarning, for one release."""

from ctbench._moved import moved_names

__getattr__ = moved_names(__name__, "ctbench.data.loader")
