"""jtm ("What's the Melody"): self-supervised music representations with CPC on MusicNet."""

__version__ = "0.1.0"


def load_encoder(path, layer: str = "encoder"):
    """A pretrained CPC model as a module embedding 16 kHz audio (B, L) -> (B, L // 160, H)."""
    from jtm.models.artifact import load_encoder as _load

    return _load(path, layer)
