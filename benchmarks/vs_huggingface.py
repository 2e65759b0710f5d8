"""Our training step beside Hugging Face's ViTMAEForPreTraining, same config, same weights.

For each model and precision, four models train with steps alternating in one process:
ours (attention path chosen per device), transformers with its default SDPA attention,
transformers with its eager attention, and transformers (SDPA) with its linear layers on
our matmul backend (what is ours alone shows against this one). Same batch, images,
masking noise, fused AdamW. The speed-up is the peer's step time over ours, the median of
per-round ratios; each row records the 1-minute load average when it finished.

    python benchmarks/vs_huggingface.py --models mae_vit_base_patch16 --batch 8 --threads 1
"""

import argparse
import gc
import os
import shlex
import sys

import torch

from mae.benchmarking import BenchSettings, build_variants, machine, run_benchmark, write_results
from mae.models.linear import MATMUL_BACKENDS, matmul_backend, set_matmul_backend

PEERS = ("hf", "hf-eager", "hf-matmul")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["mae_vit_tiny_patch16", "mae_vit_small_patch16",
                                                        "mae_vit_base_patch16"])
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--mask-ratio", type=float, default=0.75)
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads; 1 keeps timings steady on a machine shared with other work")
    parser.add_argument("--matmul-backend", choices=MATMUL_BACKENDS, default="auto",
                        help="float32 CPU linear layers: torch's BLAS, oneDNN, or auto (measured)")
    parser.add_argument("--out", default=None, help="JSON path (a .md table is written beside it)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    set_matmul_backend(args.matmul_backend)

    command = "python benchmarks/vs_huggingface.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    rows, runs = [], []
    for model in args.models:
        for precision in args.precisions:
            settings = BenchSettings(img_size=args.img_size, batch=args.batch, mask_ratio=args.mask_ratio,
                                     precision=precision, compile=args.compile, device=args.device,
                                     steps=args.steps, warmup=args.warmup)
            settings.check()
            torch.manual_seed(0)
            variants = build_variants(("ours",) + PEERS, model, args.mask_ratio, img_size=args.img_size)
            run = run_benchmark(settings, variants)
            load = round(os.getloadavg()[0], 2)
            runs.append(dict(model=model, load_average_1min=load, **run))
            by_name = {r["variant"]: r for r in run["results"]}
            ours = by_name["ours"]
            speedups = {peer: by_name[peer]["time_vs_reference"] for peer in PEERS}
            rows.append(
                f"| {model} | {precision} | {ours['images_per_s']:,.1f} "
                + "".join(f"| {by_name[p]['images_per_s']:,.1f} " for p in PEERS)
                + "".join(f"| **{speedups[p]:.2f}x** " for p in PEERS)
                + f"| {min(speedups.values()):.2f}x | {100 * ours['mfu']:.0f}% | {load} |"
            )
            print(rows[-1], flush=True)
            del variants
            gc.collect()

    table = "\n".join([
        f"**Ours vs Hugging Face ViTMAEForPreTraining: {args.img_size}px, batch {args.batch}, mask "
        f"{args.mask_ratio}{', compiled' if args.compile else ''}, {args.device}, "
        f"{torch.get_num_threads()} thread(s), float32 matmuls through {matmul_backend()}**",
        "",
        "| model | precision | ours img/s | HF sdpa img/s | HF eager img/s | HF on our matmul img/s "
        "| vs HF sdpa | vs HF eager | vs HF on our matmul | vs best HF | ours MFU | load |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]) + "\n"
    print(table, end="")
    if args.out:
        record = dict(command=command, machine=machine(args.device), runs=runs)
        for path in write_results(args.out, record, table):
            print("wrote", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
