"""The mask loss's forms, torch-free: ``--mask-loss-form`` and the run options read them without
importing torch; ``ctbench.train.losses.mask_loss`` computes them."""

from __future__ import annotations

MASK_LOSS_FORMS = {
    "paper": "mean softplus(a) over every forbidden cell of the batch (the paper's)",
    "per-case": "mean softplus(a) over each (volume, label)'s forbidden cells, then the mean over "
    "those pairs: a label with a small forbidden region weighs as much as one with a large one",
    "two-sided": "mean softplus(|a|) over every forbidden cell: negative evidence outside the "
    "organ costs as much as positive",
}
"""``--mask-loss-form``: how the forbidden cells' attention becomes one number."""
