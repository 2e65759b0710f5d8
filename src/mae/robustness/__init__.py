"""Robustness evaluation: ImageNet-C (mCE), -A, -R, -Sketch, and corrupted copies of any labelled folder."""
