"""Measures of an encoder: k-NN accuracy, segmentation metrics."""
