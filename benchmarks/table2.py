"""The paper's Table 2: wall-clock speed-up of an encoder that skips the removed patches.

For each model size, three models train side by side, steps alternating in one process:
    mask-token   encoder on all patches, removed ones replaced by a mask token ("w/ [M]"),
                 decoder depth 8: the paper's baseline for every speed-up
    ours d8      encoder on the visible patches only, decoder depth 8
    ours d1      the same with a one-block decoder
The speed-up is the baseline's step time over ours (median of per-round ratios); the FLOP
ratio beside it is what a machine bound only by arithmetic would show. Paper (128 TPU-v3
cores): ViT-L 2.8x (d8) / 3.7x (d1), ViT-H 3.5x / 4.1x.

    python benchmarks/table2.py --sizes base large huge --precision bf16 --batch 4 --steps 3
"""

import argparse
import gc
import shlex
import sys

import torch

from mae.benchmarking import BenchSettings, machine, mask_token_variant, publish, run_benchmark, share_parts
from mae.benchmarking.variants import DECODER_PARTS, ENCODER_PARTS
from mae.models import MaskedAutoencoder, model_config

SIZES = {"base": "mae_vit_base_patch16", "large": "mae_vit_large_patch16", "huge": "mae_vit_huge_patch14"}
PAPER = {("large", 8): 2.8, ("large", 1): 3.7, ("huge", 8): 3.5, ("huge", 1): 4.1}


def table2_variants(name: str, img_size: int) -> dict:
    """Baseline and ours at decoder depths 8 and 1, all sharing one set of big weights."""
    config = model_config(name, img_size=img_size, decoder_depth=8)
    ours = MaskedAutoencoder(**config)
    baseline = mask_token_variant(ours)
    shallow = MaskedAutoencoder(**{**config, "decoder_depth": 1})
    share_parts(shallow, ours, ENCODER_PARTS + tuple(p for p in DECODER_PARTS if p != "decoder_blocks"))
    return {"mask-token d8": baseline, "ours d8": ours, "ours d1": shallow}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=["base", "large", "huge"])
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--mask-ratio", type=float, default=0.75)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads; 1 keeps timings steady on a machine shared with other work")
    parser.add_argument("--out", default=None, help="JSON path (a .md table is written beside it)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = BenchSettings(img_size=args.img_size, batch=args.batch, mask_ratio=args.mask_ratio,
                             precision=args.precision, compile=args.compile, device=args.device,
                             steps=args.steps, warmup=args.warmup)
    settings.check()

    command = "python benchmarks/table2.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    runs, rows = {}, []
    for size in args.sizes:
        torch.manual_seed(0)
        variants = table2_variants(SIZES[size], args.img_size)
        run = run_benchmark(settings, variants, reference="mask-token d8")
        runs[size] = run
        by_name = {r["variant"]: r for r in run["results"]}
        base = by_name["mask-token d8"]
        for depth in (8, 1):
            ours = by_name[f"ours d{depth}"]
            paper = PAPER.get((size, depth))
            rows.append(
                f"| ViT-{size[0].upper()} | {depth} | {base['step_s_median'] * 1000:,.0f} "
                f"| {ours['step_s_median'] * 1000:,.0f} | **{1 / ours['time_vs_reference']:.2f}x** "
                f"| {base['flops_per_image'] / ours['flops_per_image']:.2f}x "
                f"| {f'{paper:.1f}x' if paper else '-'} | {100 * ours['mfu']:.0f}% |"
            )
            print(rows[-1], flush=True)
        del variants
        gc.collect()

    table = "\n".join([
        f"**Table 2, {args.img_size}px, mask {args.mask_ratio}, batch {args.batch}, {args.precision}"
        f"{', compiled' if args.compile else ''}, {args.device}** (baseline: encoder w/ [M], decoder depth 8)",
        "",
        "| encoder | dec. depth | w/ [M] ms/step | ours ms/step | speed-up | FLOP ratio | paper | ours MFU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]) + "\n"
    record = dict(command=command, machine=machine(args.device), runs=runs)
    publish(table, record, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
