"""Optimisers and learning-rate schedules: AdamW and its parameter groups, LARS, layer-wise decay."""
