"""jtm ("What's the Melody"): self-supervised music representations with CPC on MusicNet.

What a user calls (each imports torch or pandas only when called):

- `load_encoder(path, layer)`: a pretrained CPC model as a module, 16 kHz audio (B, L) ->
  features (B, L // 160, H);
- `embed_files(paths, model_dir, out)`: every window of your audio files embedded to a folder;
- `load_embeddings(folder, feature)`: an embed folder's (keys, frames, pooled).
"""

__version__ = "0.1.0"


def load_encoder(path, layer: str = "encoder"):
    """A pretrained CPC model as a module embedding 16 kHz audio (B, L) -> (B, L // 160, H), in
    eval mode. `path`: a pretraining run's folder (results/pretrain/run0) or its model.pt;
    `layer`: "encoder" (the study's read-out), "context", or "both" (B, L // 160, 2H)."""
    from jtm.models.artifact import load_encoder as _load

    return _load(path, layer)


def embed_files(paths, model_dir, out, **options) -> dict:
    """Embed every window of the audio files under `paths` (files, folders, globs) with the
    model in `model_dir`, into folder `out` (keys.parquet, frames.npy, pooled.npy,
    files.parquet); `options`: layer, pooling, hop, quality, batch_size. What `jtm features`
    runs; returns counts (files, windows, dim)."""
    from jtm.features.files import embed_files as _embed

    return _embed(list(paths), model_dir, out, **options)


def load_embeddings(folder, feature: str):
    """(keys DataFrame, frames (framed windows, 128, dim) float16, pooled (windows, dim) float32,
    both memory maps) of feature set `feature` ("cpc", "random", "logmel", "cqt") in an embed
    stage's folder (results/embeddings/run0, results/embeddings/fixed). Frames are stored for a
    non-overlapping set of windows per track: window i's are `frames[keys.frame_row[i]]` where
    that is >= 0."""
    from jtm.features.embed import load_embeddings as _load

    return _load(folder, feature)
