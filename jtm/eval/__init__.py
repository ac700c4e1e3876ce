"""Evaluation: window embeddings for downstream tasks (and, next, their metrics)."""
