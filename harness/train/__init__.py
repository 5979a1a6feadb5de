"""Training: losses (the mask loss), the trainer, the head warm-up and the pretext start."""
