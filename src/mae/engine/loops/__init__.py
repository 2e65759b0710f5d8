"""The training loops: pretraining, the classifier loop (fine-tuning, linear probing), segmentation, ablation."""
