#!/usr/bin/env bash
# The GPU runs of docs/benchmarks.md, for one NVIDIA H200 (or any CUDA GPU):
# bf16 autocast, SDPA (flash) attention, torch.compile, fused AdamW; results land in
# benchmarks/results/ as JSON + Markdown. About 15 minutes, most of it compilation.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MAE=${MAE:-.venv/bin/mae}
OUT=benchmarks/results
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr ' ' '_')

# ViT-B/16 and ViT-L/16 MAE pretraining at 224, ours beside Hugging Face (both compiled)
$MAE bench --device cuda --model mae_vit_base_patch16 --batch 256 --precision bf16 --compile \
    --compare hf --steps 20 --warmup 3 --out "$OUT/gpu_${GPU}_vit_b16_bf16_compiled.json"
$MAE bench --device cuda --model mae_vit_large_patch16 --batch 256 --precision bf16 --compile \
    --compare hf --steps 20 --warmup 3 --out "$OUT/gpu_${GPU}_vit_l16_bf16_compiled.json"
# the same without compilation, to show what it buys
$MAE bench --device cuda --model mae_vit_large_patch16 --batch 256 --precision bf16 --no-compile \
    --compare hf --steps 20 --warmup 3 --out "$OUT/gpu_${GPU}_vit_l16_bf16_eager.json"

# Table 2 on the GPU: the paper's 4096 images over 128 TPU cores is 32 per core; 64 keeps the
# ViT-H baseline (every patch through the encoder, ~0.8 GB of activations per image) in memory
$PY benchmarks/table2.py --device cuda --sizes large huge --batch 64 --precision bf16 --compile \
    --steps 10 --warmup 3 --out "$OUT/table2_gpu_${GPU}_bf16.json"

# how many loader workers feed the measured ViT-B and ViT-L throughputs
feed() { $PY -c "import json, sys; print(json.load(open(sys.argv[1]))['results'][0]['images_per_s'])" "$1"; }
$PY benchmarks/data_pipeline.py --workers 0 4 8 16 \
    --feed "$(feed "$OUT/gpu_${GPU}_vit_b16_bf16_compiled.json")" "$(feed "$OUT/gpu_${GPU}_vit_l16_bf16_compiled.json")" \
    --out "$OUT/data_pipeline_gpu_host_${GPU}.json"
