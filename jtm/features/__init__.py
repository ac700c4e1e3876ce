"""Frozen features of every window (stage `embed`): the CPC model's, its random-init control's
and log-mel's, stored once for the downstream study."""
