"""Training: CPC pretraining (the loop), its checkpoints, DDP setup, carried streams and the InfoNCE loss."""
