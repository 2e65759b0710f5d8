#!/bin/bash
# The recorded `mae ablate` grids of docs/ablate.md, one per call (each fits one CPU core):
#   benchmarks/ablate_runs.sh synthetic     # the built-in dataset
#   benchmarks/ablate_runs.sh photos        # held-out crops of real photos (benchmarks/photo_crops.py)
# then the same plain fine-tuning from random weights, the reference every pretrained row beats or not.
set -euo pipefail
which=$1
out=runs/ablate-$which
plain=(--epochs 4 --batch-size 64 --img-size 32 --mixup 0 --cutmix 0 --randaug-ops 0 --reprob 0 --smoothing 0
       --drop-path 0 --threads 1 --num-workers 0 --keep-last 1)
uptime
case $which in
  synthetic)
    mae ablate --config configs/ablate_demo.yaml --output-dir "$out"
    data=(--data synthetic --synthetic-size 1024 --synthetic-val-size 1024);;
  photos)
    python benchmarks/photo_crops.py --out runs/photo-crops --val-per-class 64
    mae ablate --config configs/ablate_demo.yaml --data runs/photo-crops/train --knn-val-data runs/photo-crops/val \
      --output-dir "$out"
    data=(--data runs/photo-crops);;
  *) echo "usage: $0 synthetic|photos" >&2; exit 2;;
esac
uptime
mae finetune --checkpoint "$out/base" --random-init "${data[@]}" "${plain[@]}" --output-dir "$out/scratch" --resume auto
uptime
