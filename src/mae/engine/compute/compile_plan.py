"""Whether a run compiles its model: on for runs long enough that the cold compile is a small share.

torch.compile fuses what eager mode runs op by op (casts, norms, activations, the loss), but
its first compile takes a minute or more on a CPU (several on a busy one) and a few seconds
once its cache is warm. `--compile` / `--no-compile` decide; left out (None), the run
compiles when the estimated cold compile is at most COMPILE_SHARE of the eager run time
still ahead: the forward + backward passes planned, times one measured eager pass:

    estimated cold compile = COLD_COMPILE_S_PER_BLOCK x transformer blocks x CPU slowdown
    compile  <=>  estimated cold compile <= COMPILE_SHARE x passes left x eager pass time

Both sides are measured under the machine's load of the moment. The eager pass is timed as
it runs now. The compile is mostly single-threaded Python (tracing, code generation) and C++
builds, so its per-block time, measured on a reference machine, is scaled by the CPU
slowdown: how long a fixed piece of pure-Python work takes now, over how long it took on that
machine while the compile was measured (REFERENCE_WORK_S). A busy or slower CPU then makes
the compile look as much longer as it makes the eager pass, instead of only the eager pass
(which tipped loaded machines towards compiling). Neither the load average (a minute behind,
counting processes that wait on the disk, missing on Windows) nor an idle timing cached from
an earlier run (there is none on the first run, the one that matters) would do that.

Compiled kernels are kept in a persistent cache, ~/.cache/mae/inductor (XDG_CACHE_HOME is
honoured; TORCHINDUCTOR_CACHE_DIR, when set, wins), so that the next run of the same model
starts in seconds.
"""

import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ...models.linear import matmul_backend
from . import distributed
from .precision import autocast

# the cold compile (forward + backward graphs) per transformer block, and the time of
# `_python_work()` x WORK_ROUNDS, measured together on a 2-core AMD EPYC (AVX-512) at load 2-3:
# the demo's model (8 blocks, 32 px, batch 64, fp32) compiled cold in 65 s, the work took 0.12-0.17 s
COLD_COMPILE_S_PER_BLOCK = 8.0
REFERENCE_WORK_S = 0.14
WORK_ROUNDS = 5
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


def _python_work() -> None:
    table = {f"key{i}": i % 97 for i in range(40_000)}
    sorted(table.items(), key=lambda item: item[1])


def cpu_slowdown() -> float:
    """How many times longer than on the reference machine (REFERENCE_WORK_S) a fixed piece of
    pure-Python work takes now: above 1 on a slower or busier CPU. A few tenths of a second."""
    start = time.perf_counter()
    for _ in range(WORK_ROUNDS):
        _python_work()
    return (time.perf_counter() - start) / REFERENCE_WORK_S


def estimated_cold_compile_s(model: torch.nn.Module, slowdown: float) -> float:
    blocks = len(model.blocks) + len(getattr(model, "decoder_blocks", ()))
    return COLD_COMPILE_S_PER_BLOCK * blocks * slowdown


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


@dataclass(frozen=True)
class CompilePlan:
    on: bool
    why: str  # the decision, said after "compile: "
    cold_compile_s: float | None  # estimated under the load at start; None when not compiling
    cache: Path | None  # where the compiled kernels persist, when compiling

    def notice(self) -> str:
        """The line to show before the first compiled step, which takes the compile's time."""
        return f"compiling the model (~{self.cold_compile_s:.0f} s, once; cached in {self.cache})"


def plan_compile(config, model: torch.nn.Module, passes_left: int, precision: str,
                 device: torch.device, env: distributed.DistEnv) -> CompilePlan:
    """The run's decision, the same in every process (the slowest one's pass and CPU count)."""
    if config.compile is False or (config.compile is None and passes_left <= 0):
        return CompilePlan(False, decide_compile(config.compile, passes_left, None, 0.0)[1], None, None)
    pass_s = 0.0 if config.compile else measured_pass_s(model, config.batch_size, config.mask_ratio, precision, device)
    measured = torch.tensor([pass_s, cpu_slowdown()], device=device)
    pass_s, slowdown = distributed.all_reduce_max(measured, env).tolist()
    cold_compile_s = estimated_cold_compile_s(model, slowdown)
    compile_now, why = decide_compile(config.compile, passes_left, pass_s, cold_compile_s)
    if not compile_now:
        return CompilePlan(False, why, None, None)
    matmul_backend()  # its probe reads files, which would break the compiled graph: decide it now
    return CompilePlan(True, why, cold_compile_s, use_persistent_cache())
