"""`mae bench`: training-step throughput, FLOPs, MFU and memory, side by side with peers."""

import argparse
import shlex

import torch

from ..benchmarking import BenchSettings, build_variants, machine, markdown_table, run_benchmark, write_results
from ..benchmarking.step import BENCH_PRECISIONS
from ..benchmarking.variants import VARIANTS
from ..engine.config.base import SizeArgument, parse_size
from ..engine.run.metrics import Progress
from ..models.linear import matmul_backend, set_matmul_backend
from ..models.options import MATMUL_BACKENDS
from ..models.zoo import model_names
from ..util.allocator import keep_freed_memory
from ..util.text import format_size

HELP = "measure a pretraining step (images/s, FLOPs, MFU, memory), optionally beside Hugging Face"

EPILOG = """\
examples:
  mae bench --model mae_vit_base_patch16 --batch-size 8 --precision bf16 --compare hf --compare mask-token
  mae bench --model mae_vit_large_patch16 --device cuda --batch-size 256 --precision bf16 --compile \\
      --compare hf --out bench.json                               # also bench.md, a Markdown table
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument("--model", default="mae_vit_base_patch16", metavar="NAME",
                        help=f"named model: {', '.join(model_names())}")
    parser.add_argument("--img-size", action=SizeArgument, default=[224],
                        help="input resolution in pixels: one number (a square) or two (height width) (default: 224)")
    parser.add_argument("--batch-size", "--batch", dest="batch", type=int, default=32, help="images per step")
    parser.add_argument("--mask-ratio", type=float, default=0.75, help="fraction of patches removed")
    parser.add_argument("--decoder-depth", type=int, default=None, help="override the config's decoder depth")
    parser.add_argument("--precision", choices=BENCH_PRECISIONS, default="fp32",
                        help="bf16 = autocast with float32 master weights")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False,
                        help="torch.compile every model (the first steps then include compilation)")
    parser.add_argument("--fused-attention", action=argparse.BooleanOptionalAction, default=None,
                        help="force SDPA (--fused-attention) or the plain matmul-softmax path "
                             "(--no-fused-attention); default: per layer, the faster for the device")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cpu, cuda or cuda:N")
    parser.add_argument("--compare", action="append", default=[], choices=[v for v in VARIANTS if v != "ours"],
                        help="also run this variant, steps alternating with ours (repeatable)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per variant (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per variant first")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's)")
    parser.add_argument("--matmul-backend", choices=MATMUL_BACKENDS, default="auto",
                        help="float32 CPU linear layers through torch's BLAS, oneDNN, or auto (a short "
                             "measured probe picks the faster)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights, images and masks")
    parser.add_argument("--out", default=None, metavar="FILE.json",
                        help="write the results here as JSON, and as a Markdown table beside it (.md)")


def run(args: argparse.Namespace) -> int:
    args.img_size = parse_size(args.img_size, "--img-size")
    settings = BenchSettings(
        img_size=args.img_size, batch=args.batch, mask_ratio=args.mask_ratio, precision=args.precision,
        compile=args.compile, device=args.device, steps=args.steps, warmup=args.warmup, seed=args.seed,
    )
    settings.check()
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    set_matmul_backend(args.matmul_backend)
    keep_freed_memory()
    if args.model not in model_names():
        raise ValueError(f"--model {args.model!r} is unknown; known models: {', '.join(model_names())}")
    overrides = dict(img_size=args.img_size)
    if args.decoder_depth is not None:
        if args.decoder_depth < 1:
            raise ValueError(f"--decoder-depth must be >= 1, got {args.decoder_depth}")
        overrides["decoder_depth"] = args.decoder_depth

    torch.manual_seed(args.seed)
    names = ["ours"] + list(dict.fromkeys(args.compare))
    progress = Progress(0, desc="bench")  # on stderr: a bar on a terminal, plain lines otherwise
    progress.write(f"bench: building {', '.join(names)} ({args.model}, {format_size(args.img_size)}, batch "
                   f"{args.batch}, {args.warmup} warm-up + {args.steps} timed rounds)")
    variants = build_variants(names, args.model, args.mask_ratio, args.fused_attention, **overrides)
    try:
        measured = run_benchmark(settings, variants, progress=progress)
    finally:
        progress.close()
    record = dict(command=command_line(args), machine=machine(args.device), model=args.model,
                  fused_attention=args.fused_attention, matmul_backend=matmul_backend(), **measured)
    table = markdown_table(record)
    print(table, end="")
    if args.out:
        json_path, md_path = write_results(args.out, record, table)
        print(f"wrote {json_path} and {md_path}")
    return 0


def command_line(args: argparse.Namespace) -> str:
    """The full command that reproduces this run, every option spelled out."""
    words = ["mae", "bench"]
    for key, value in vars(args).items():
        if key.startswith("_") or key == "command" or value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            words.append(flag if value else "--no-" + key.replace("_", "-"))
        elif isinstance(value, list):  # a flag given once per item (--compare)
            for item in value:
                words += [flag, str(item)]
        elif isinstance(value, tuple):  # one flag with several values (--img-size H W)
            words += [flag, *map(str, value)]
        else:
            words += [flag, str(value)]
    return shlex.join(words)
