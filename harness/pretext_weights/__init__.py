"""Pretext weights shipped with ctbench (``ctbench.train.pretraining.SHIPPED``): the default
phantom preset's, so that a first run does not spend minutes building them. Each ``.pt`` is a
torchvision ResNet-18 state dict; its ``.json`` is the build's record (settings, pool, fit,
SHA-256, machine). ``ctbench pretrain --preset default --rebuild`` builds it again."""
