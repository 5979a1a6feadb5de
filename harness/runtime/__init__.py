"""Where and how work runs: devices, torchrun, files (atomic, bounded, locked), progress,
checkpoints."""
