"""Plain matmul-softmax attention vs SDPA on this machine, per dtype and sequence length.

Times one attention layer's forward + backward (qkv and output projections included, as
in a block) on each path, alternating, for the token counts and widths the named models
meet (their encoder on the kept patches, their decoder on every patch, at 224 and 320 px),
in float32 and in bf16 autocast. Reports each path's median time and SDPA's time over the
plain path's (median of per-round ratios), with the 1-minute load average: where the ratio
is above 1 the plain path is the faster, which sets `Attention.PLAIN_CPU_MAX_TOKENS`.

    python benchmarks/attention_paths.py --threads 1 --out benchmarks/results/attention_paths_cpu.json
"""

import argparse
import os
import shlex
import statistics
import sys
import time

import torch

from mae.benchmarking import machine, publish
from mae.models.vit import Attention
from mae.util.allocator import keep_freed_memory

# (width, heads) of the encoders and decoders of tiny, small and base
LAYERS = {"tiny-encoder": (192, 3), "tiny-decoder": (128, 4), "small-encoder": (384, 6), "small-decoder": (256, 8),
          "base-encoder": (768, 12), "base-decoder": (512, 16)}
# tokens: 224 px encoder (1 + 49 kept) and decoder (1 + 196); 320 px (1 + 100, 1 + 400); 384 px and
# 448 px decoders
TOKENS = (50, 101, 197, 401, 577, 785)


def fwd_bwd_seconds(attn: Attention, x: torch.Tensor, dtype: torch.dtype) -> float:
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        y = attn(x)
    y.float().sum().backward()
    return time.perf_counter() - start


def compare(width: int, heads: int, tokens: int, batch: int, dtype: torch.dtype, rounds: int) -> dict:
    torch.manual_seed(0)
    attn = Attention(width, heads)
    x = torch.randn(batch, tokens, width, requires_grad=True)
    paths = {"plain": False, "sdpa": True}
    times = {name: [] for name in paths}
    for r in range(rounds + 1):  # the first round warms up
        for name in (list(paths) if r % 2 else list(paths)[::-1]):
            attn.fused = paths[name]
            seconds = fwd_bwd_seconds(attn, x, dtype)
            if r:
                times[name].append(seconds)
    ratio = statistics.median(s / p for s, p in zip(times["sdpa"], times["plain"]))
    return dict(plain_ms=1000 * statistics.median(times["plain"]), sdpa_ms=1000 * statistics.median(times["sdpa"]),
                sdpa_over_plain=ratio)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", nargs="+", choices=list(LAYERS), default=list(LAYERS))
    parser.add_argument("--tokens", type=int, nargs="+", default=list(TOKENS))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per shape (after one warm-up)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (1 on a shared machine)")
    parser.add_argument("--out", default=None, help="JSON path (a .md table is written beside it)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    keep_freed_memory()  # as in training

    rows, results = [], []
    for dtype in (torch.float32, torch.bfloat16):
        for layer in args.layers:
            width, heads = LAYERS[layer]
            for tokens in args.tokens:
                result = compare(width, heads, tokens, args.batch, dtype, args.rounds)
                load = round(os.getloadavg()[0], 2)
                name = str(dtype).replace("torch.", "")
                results.append(dict(dtype=name, layer=layer, width=width, heads=heads, tokens=tokens,
                                    load_average_1min=load, **result))
                faster = "plain" if result["sdpa_over_plain"] > 1 else "sdpa"
                rows.append(f"| {name} | {layer} ({width} / {heads} heads) | {tokens} | {result['plain_ms']:.2f} "
                            f"| {result['sdpa_ms']:.2f} | {result['sdpa_over_plain']:.2f}x | {faster} | {load} |")
                print(rows[-1], flush=True)

    table = "\n".join([
        f"**One attention layer, forward + backward, batch {args.batch}, cpu, {torch.get_num_threads()} thread(s)**",
        "", "| dtype | layer | tokens | plain ms | SDPA ms | SDPA / plain | faster | load |",
        "|---|---|---:|---:|---:|---:|---|---:|", *rows,
    ]) + "\n"
    command = "python benchmarks/attention_paths.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    record = dict(command=command, machine=machine("cpu"), results=results)
    publish(table, record, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
