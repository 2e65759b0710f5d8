"""`mae bench`'s run: the process set up as training sets it up, the variants built, timed side
by side, and the table printed (and written with --out)."""

import torch

from ..engine.compute.distributed import resolve_device
from ..engine.compute.precision import native_bf16
from ..engine.compute.process import set_up_process
from ..engine.config.bench import BenchConfig
from ..engine.run.metrics import Progress
from ..models.linear import matmul_backend
from ..util.text import format_size
from .report import machine, markdown_table, write_results
from .runner import BenchSettings, run_benchmark
from .variants import build_variants


def bench(config: BenchConfig, command: str) -> int:
    """Measure as `config` says; `command` (the full command line) is recorded with the results."""
    device = resolve_device(config.device)
    precision = config.precision
    if precision == "auto":
        precision = "bf16" if native_bf16(device) else "fp32"
    img_size = config.img_size  # a side, or (height, width), as the config parsed it
    settings = BenchSettings(img_size=img_size, batch=config.batch_size, mask_ratio=config.mask_ratio,
                             precision=precision, compile=config.compile, device=str(device), steps=config.steps,
                             warmup=config.warmup, seed=config.seed)
    settings.check()
    set_up_process(config.threads, config.matmul_backend)
    overrides = dict(img_size=img_size)
    if config.decoder_depth is not None:
        overrides["decoder_depth"] = config.decoder_depth

    torch.manual_seed(config.seed)
    names = ["ours", *dict.fromkeys(config.compare)]
    progress = Progress(0, desc="bench")  # on stderr: a bar on a terminal, plain lines otherwise
    progress.write(f"bench: building {', '.join(names)} ({config.model}, {format_size(img_size)}, batch "
                   f"{config.batch_size}, {precision}, {'compiled' if config.compile else 'eager'}, "
                   f"{config.warmup} warm-up + {config.steps} timed rounds)")
    variants = build_variants(names, config.model, config.mask_ratio, config.fused_attention, **overrides)
    try:
        measured = run_benchmark(settings, variants, progress=progress)
    finally:
        progress.close()
    record = dict(command=command, machine=machine(str(device)), model=config.model,
                  fused_attention=config.fused_attention, matmul_backend=matmul_backend(), **measured)
    table = markdown_table(record)
    print(table, end="")
    if config.out:
        json_path, md_path = write_results(config.out, record, table)
        print(f"wrote {json_path} and {md_path}")
    return 0
