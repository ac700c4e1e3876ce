"""jtm ("What's the Melody"): self-supervised music representations with CPC on MusicNet."""

__version__ = "0.1.0"
