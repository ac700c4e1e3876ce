"""Training: the InfoNCE loss, CPC pretraining, checkpoints and seeding."""
