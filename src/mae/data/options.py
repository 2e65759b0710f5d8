"""Data settings a config offers, as plain Python (no torch): the pretraining augmentations."""

AUGMENTATIONS = ("none", "crop", "rrc", "rrc_jitter")  # built by augmentations.pretrain_transform
