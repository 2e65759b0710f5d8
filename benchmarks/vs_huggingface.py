"""Our training step beside Hugging Face's ViTMAEForPreTraining, same config, same weights.

For each model and precision, five models train with steps alternating in one process
(order rotated each round): ours eager, ours through torch.compile (as a long pretraining
run runs it by default), transformers with its default SDPA attention, the same with its
eager attention, and the same (SDPA) with its linear layers on our matmul backend, which is
HF on the best BLAS of this machine (what is ours alone shows against this one). Same
batch, images, masking noise; each side with its own default optimizer (ours: fused AdamW
with the official betas and weight decay; HF: what its Trainer builds by default, fused
AdamW at lr 5e-5). The speed-up is the peer's step time over ours, the median of per-round
ratios. MFU is against the best peak of its dtype measured anywhere in the same run; every
row carries the 1-minute load average when it finished. The process keeps its freed memory
(`mae.util.allocator`, as training does), for both sides alike.

    python benchmarks/vs_huggingface.py --models mae_vit_base_patch16 --batch 8 --threads 1
"""

import argparse
import gc
import os
import shlex
import sys

import torch

from mae.benchmarking import BenchSettings, build_variants, machine, publish, run_benchmark
from mae.models.linear import matmul_backend, set_matmul_backend
from mae.models.options import MATMUL_BACKENDS
from mae.util.allocator import keep_freed_memory

OURS = ("ours", "ours-compiled")
PEERS = ("hf", "hf-eager", "hf-matmul")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["mae_vit_tiny_patch16", "mae_vit_small_patch16",
                                                        "mae_vit_base_patch16"])
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--mask-ratio", type=float, default=0.75)
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False,
                        help="compile every model, Hugging Face's too (ours-compiled always is)")
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
    keep_freed_memory()  # both sides: one process

    command = "python benchmarks/vs_huggingface.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    runs = []
    for model in args.models:
        for precision in args.precisions:
            settings = BenchSettings(img_size=args.img_size, batch=args.batch, mask_ratio=args.mask_ratio,
                                     precision=precision, compile=args.compile, device=args.device,
                                     steps=args.steps, warmup=args.warmup)
            settings.check()
            torch.manual_seed(0)
            variants = build_variants(OURS + PEERS, model, args.mask_ratio, img_size=args.img_size)
            run = run_benchmark(settings, variants, reference="ours-compiled")
            runs.append(dict(model=model, load_average_1min=round(os.getloadavg()[0], 2), **run))
            print(row(runs[-1], run["peak_flops_per_s"]), flush=True)
            del variants
            gc.collect()

    # MFU against the best rate of each dtype seen in the whole run (square matmuls or steps)
    peaks = {}
    for run in runs:
        peaks[run["matmul_dtype"]] = max(peaks.get(run["matmul_dtype"], 0.0), run["peak_flops_per_s"])
    table = "\n".join([
        f"**Ours vs Hugging Face ViTMAEForPreTraining: {args.img_size}px, batch {args.batch}, mask "
        f"{args.mask_ratio}{', all compiled' if args.compile else ''}, {args.device}, "
        f"{torch.get_num_threads()} thread(s), float32 matmuls through {matmul_backend()}; peak "
        + ", ".join(f"{dtype} {rate / 1e12:.2f} TFLOP/s" for dtype, rate in peaks.items()) + "**",
        "",
        "| model | precision | ours img/s | ours compiled img/s | HF img/s | HF eager-attention img/s "
        "| HF on our BLAS img/s | **compiled vs HF** | compiled vs HF on our BLAS | compiled vs best HF "
        "| eager vs HF | eager vs HF on our BLAS | MFU ours / compiled / HF | first compiled step s | load |",
        "|---|---|" + "---:|" * 13,
        *(row(run, peaks[run["matmul_dtype"]]) for run in runs),
    ]) + "\n"
    record = dict(command=command, machine=machine(args.device), runs=runs)
    publish(table, record, args.out)
    return 0


def row(run: dict, peak: float) -> str:
    """One Markdown row: images/s, speed-ups (peer time over ours), MFU against `peak`, the load."""
    by_name = {r["variant"]: r for r in run["results"]}

    def vs(peer: str, ours: str) -> float:
        return by_name[peer]["time_vs_reference"] / by_name[ours]["time_vs_reference"]

    best_hf = min(vs(peer, "ours-compiled") for peer in PEERS)
    mfu = " / ".join(f"{100 * by_name[v]['achieved_flops_per_s'] / peak:.0f}%" for v in ("ours", "ours-compiled", "hf"))
    return (f"| {run['model']} | {run['settings']['precision']} "
            + "".join(f"| {by_name[v]['images_per_s']:,.1f} " for v in OURS + PEERS)
            + f"| **{vs('hf', 'ours-compiled'):.2f}x** | {vs('hf-matmul', 'ours-compiled'):.2f}x | {best_hf:.2f}x "
            + f"| {vs('hf', 'ours'):.2f}x | {vs('hf-matmul', 'ours'):.2f}x | {mfu} "
            + f"| {by_name['ours-compiled']['first_step_s']:.0f} | {run['load_average_1min']} |")


if __name__ == "__main__":
    sys.exit(main())
