#!/bin/bash
# The recorded `mae ablate` grids of docs/ablate.md, one per call (each fits one CPU core):
#   benchmarks/ablate_runs.sh synthetic     # the built-in dataset
#   benchmarks/ablate_runs.sh photos        # held-out crops of real photos (benchmarks/photo_crops.py)
set -euo pipefail
uptime
case $1 in
  synthetic)
    mae ablate --config configs/ablate_demo.yaml --output-dir runs/ablate-synthetic;;
  photos)
    python benchmarks/photo_crops.py --out runs/photo-crops --val-per-class 64
    mae ablate --config configs/ablate_demo.yaml --data runs/photo-crops/train --knn-val-data runs/photo-crops/val \
      --output-dir runs/ablate-photos;;
  *) echo "usage: $0 synthetic|photos" >&2; exit 2;;
esac
uptime
