"""What ``--device`` and ``--precision`` accept, torch-free: the run options and the command
line read these without importing torch; ``ctbench.runtime.devices`` resolves them."""

from __future__ import annotations

DEVICE_HELP = "auto (CUDA when present, else CPU), cpu, cuda, cuda:N or mps."
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
