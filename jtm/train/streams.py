"""The recurrent state `sequential` sampling carries from one window of a track to the next.

One slot per stream (batch row): selected for the streams of a batch, zeroed where a stream
starts a new track, stored back after the step. None for a transformer context (no state).
"""

from __future__ import annotations

import torch


def new_state(model, batch_size: int, device):
    """Zero carried state for every sequential stream, or None for a transformer context."""
    rnn = getattr(model.context, "net", None)
    if not isinstance(rnn, torch.nn.RNNBase):
        return None
    shape = (rnn.num_layers, batch_size, rnn.hidden_size)
    if isinstance(rnn, torch.nn.LSTM):
        return (torch.zeros(shape, device=device), torch.zeros(shape, device=device))
    return torch.zeros(shape, device=device)


def select_state(state, streams: torch.Tensor, resets: torch.Tensor):
    """The carried state of these streams, zeroed where a stream starts a new track."""
    if state is None:
        return None
    keep = (~resets).to(streams.device).float().view(1, -1, 1)
    if isinstance(state, tuple):
        return tuple((s[:, streams] * keep).contiguous() for s in state)
    return (state[:, streams] * keep).contiguous()


def store_state(state, streams: torch.Tensor, new) -> None:
    if state is None:
        return
    pairs = zip(state, new, strict=True) if isinstance(state, tuple) else [(state, new)]
    for full, part in pairs:
        full[:, streams] = part.detach()


def move_state(state, device):
    if state is None:
        return None
    return tuple(s.to(device) for s in state) if isinstance(state, tuple) else state.to(device)
