"""Whether a run compiles its model: on for runs long enough that the cold compile is a small share.

torch.compile fuses what eager mode runs op by op (casts, norms, activations, the loss), but
its first compile takes about a minute on a CPU (more on a busy one) and a few seconds
once its cache is warm. `--compile` / `--no-compile` decide; left out (None), the run
compiles when the estimated cold compile is at most COMPILE_SHARE of the eager run time
still ahead: the forward + backward passes planned, times one measured eager pass:

    estimated cold compile = COLD_COMPILE_S_PER_BLOCK x transformer blocks
    compile  <=>  estimated cold compile <= COMPILE_SHARE x passes left x eager pass time

Compiled kernels are kept in a persistent cache, ~/.cache/mae/inductor (XDG_CACHE_HOME is
honoured; TORCHINDUCTOR_CACHE_DIR, when set, wins), so that the next run of the same model
starts in seconds.
"""

import os
import time
from pathlib import Path

import torch

from ...models.linear import matmul_backend
from . import distributed
from .precision import autocast

# cold compile (forward + backward graphs) per transformer block, from the first steps measured
# on the 2-core CPU of docs/benchmarks.md at load 3-4: ViT-T and ViT-S MAEs (16 blocks) 49-122 s,
# 3-7.6 s a block; near the top, so that a busy machine does not compile a run too short for it
COLD_COMPILE_S_PER_BLOCK = 6.5
COMPILE_SHARE = 0.05


def inductor_cache_dir() -> Path:
    """Where compiled kernels persist: TORCHINDUCTOR_CACHE_DIR if the user set it, else
    ~/.cache/mae/inductor. torch writes its own default (a temporary folder) into the
    environment when it first looks, so that value counts as not set."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    chosen = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if chosen and os.path.abspath(chosen) != os.path.abspath(default_cache_dir()):
        return Path(chosen)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mae" / "inductor"


def use_persistent_cache() -> Path:
    """Point torch's inductor cache at `inductor_cache_dir()` (read by torch when it first compiles)."""
    path = inductor_cache_dir()
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(path)
    return path


def estimated_cold_compile_s(model: torch.nn.Module) -> float:
    blocks = len(model.blocks) + len(getattr(model, "decoder_blocks", ()))
    return COLD_COMPILE_S_PER_BLOCK * blocks


def measured_pass_s(model: torch.nn.Module, batch: int, mask_ratio: float, precision: str,
                    device: torch.device) -> float:
    """Seconds of one eager forward + backward on a batch of the run's shape (after a warm-up one).

    Leaves no gradient behind and changes no weight.
    """
    in_chans, (height, width) = model.patch_embed.in_chans, model.patch_embed.img_size
    imgs = torch.zeros(batch, in_chans, height, width, device=device)
    noise = torch.linspace(0, 1, model.patch_embed.num_patches, device=device).expand(batch, -1)
    for _ in range(2):
        _synchronize(device)
        start = time.perf_counter()
        with autocast(precision, device):
            loss = model(imgs, mask_ratio=mask_ratio, noise=noise).loss
        loss.backward()
        _synchronize(device)
        seconds = time.perf_counter() - start
    model.zero_grad(set_to_none=True)
    return seconds


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def decide_compile(requested: bool | None, passes_left: int, pass_s: float | None,
                   cold_compile_s: float) -> tuple[bool, str]:
    """(compile?, why) for `--compile` given (True / False) or left out (None); a pass is one
    forward + backward (an optimizer step is `accum_iter` of them)."""
    if requested is not None:
        return requested, f"--{'' if requested else 'no-'}compile"
    if passes_left <= 0:
        return False, "off: no step left to run"
    eager_s = passes_left * pass_s
    share = cold_compile_s / eager_s if eager_s > 0 else float("inf")
    verdict = "on" if share <= COMPILE_SHARE else "off"
    return share <= COMPILE_SHARE, (
        f"{verdict}: {passes_left} forward + backward passes ahead x {pass_s:.3g} s eager = {eager_s:,.4g} s; "
        f"the cold compile, estimated at {cold_compile_s:.0f} s, would be {100 * share:,.1f}% of that (on at "
        f"<= {100 * COMPILE_SHARE:g}%; --compile / --no-compile decide)"
    )


def plan_compile(config, model: torch.nn.Module, passes_left: int, precision: str,
                 device: torch.device, env: distributed.DistEnv) -> tuple[bool, str]:
    """The run's decision, the same in every process (the slowest one's pass counts)."""
    pass_s = None
    if config.compile is None and passes_left > 0:
        seconds = measured_pass_s(model, config.batch_size, config.mask_ratio, precision, device)
        pass_s = float(distributed.all_reduce_max(torch.tensor(seconds, device=device), env))
    compile_now, why = decide_compile(config.compile, passes_left, pass_s, estimated_cold_compile_s(model))
    if compile_now:
        matmul_backend()  # its probe reads files, which would break the compiled graph: decide it now
        why += f"; kernels cached in {use_persistent_cache()}"
    return compile_now, why
