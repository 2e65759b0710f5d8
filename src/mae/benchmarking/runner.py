"""Run training steps of several models side by side and report throughput, FLOPs, MFU.

Steps alternate between the models within one process (round r runs every model once,
the order rotated by r), so that a busy machine slows all of them alike; each model's
time relative to the reference is the median over rounds of the per-round ratio. What it
is doing is shown as it goes (`progress`: a bar on a terminal, plain lines otherwise).
"""

import math
import statistics
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

from ..engine.config.base import check_seed
from ..engine.run.metrics import Progress
from ..models.options import check_mask_ratio
from ..util.sizes import to_2tuple
from .measure import (
    StepTimer,
    matmul_flops_per_s,
    saved_activation_bytes,
    step_peak_bytes,
    synchronize,
    training_flops_per_image,
)
from .step import STEP_PRECISIONS, TrainStep, default_optimizers
from .variants import COMPILED_VARIANTS


@dataclass
class BenchSettings:
    img_size: int | tuple[int, int] = 224  # a side, or (height, width)
    batch: int = 32
    mask_ratio: float = 0.75
    precision: str = "fp32"  # "fp32" | "bf16" (autocast, float32 master weights)
    compile: bool = False
    device: str = "cpu"
    steps: int = 10  # timed rounds
    warmup: int = 2  # untimed rounds first (compilation happens here)
    seed: int = 0

    def check(self) -> None:
        """Refuse bad settings with a clear message before anything is built."""
        if self.batch < 1:
            raise ValueError(f"--batch must be >= 1, got {self.batch}")
        if min(to_2tuple(self.img_size)) < 1:
            raise ValueError(f"--img-size must be >= 1, got {self.img_size}")
        if self.steps < 1 or self.warmup < 0:
            raise ValueError(f"--steps must be >= 1 and --warmup >= 0, got {self.steps}, {self.warmup}")
        if self.compile and self.warmup < 1:
            raise ValueError("--compile needs --warmup >= 1, or compilation would be timed")
        if self.precision not in STEP_PRECISIONS:
            raise ValueError(f"--precision must be one of {', '.join(STEP_PRECISIONS)}, got {self.precision!r}")
        check_mask_ratio(self.mask_ratio)
        check_seed(self.seed)
        try:
            device = torch.device(self.device)
        except RuntimeError as err:
            raise ValueError(f"--device {self.device!r} is not a device name (cpu, cuda, cuda:1)") from err
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {self.device}: this torch build sees no CUDA device")
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"--device {self.device}: only cpu and cuda are supported")


def step_noise(seed: int, step: int, batch: int, length: int) -> torch.Tensor:
    """The masking noise of one step: a function of (seed, step) only."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return torch.rand(batch, length, generator=gen)


def run_benchmark(settings: BenchSettings, variants: dict[str, nn.Module], reference: str = "ours",
                  progress: Progress | None = None) -> dict:
    """Time `variants` (name -> model(imgs, mask_ratio, noise).loss) side by side, saying each phase
    and round to `progress` (default: silent)."""
    settings.check()
    progress = progress or Progress(0, enabled=False)
    if reference not in variants:
        raise ValueError(f"reference variant {reference!r} is not among {sorted(variants)}")
    compiled = {name: settings.compile or name in COMPILED_VARIANTS for name in variants}
    if any(compiled.values()) and settings.warmup < 1:
        raise ValueError("a compiled variant needs --warmup >= 1, or compilation would be timed")
    device = torch.device(settings.device)
    img_size = to_2tuple(settings.img_size)
    geometries = {_geometry(model) for model in variants.values()}
    if len(geometries) != 1 or next(iter(geometries))[0] != img_size:
        raise ValueError(f"the variants must all be built for {img_size} images; got {geometries}")
    _, patch_size, in_chans = geometries.pop()
    num_patches = math.prod(side // patch_size for side in img_size)

    progress.write(f"bench: counting the FLOPs and saved activations of {', '.join(variants)}")
    flops = {name: training_flops_per_image(model, img_size, in_chans, settings.mask_ratio)
             for name, model in variants.items()}
    for model in variants.values():
        model.to(device).train()
    optimizers = default_optimizers(variants)
    steps = {name: TrainStep(model, optimizers[name], device, settings.precision, compiled[name])
             for name, model in variants.items()}

    gen = torch.Generator().manual_seed(settings.seed)
    imgs = torch.randn(settings.batch, in_chans, *img_size, generator=gen).to(device)
    rounds = settings.warmup + settings.steps
    noise = [step_noise(settings.seed, r, settings.batch, num_patches).to(device) for r in range(rounds)]

    activations = {
        name: saved_activation_bytes(step.model, lambda s=step: s.loss(imgs, noise[0], settings.mask_ratio, eager=True))
        for name, step in steps.items()
    }
    losses, first_step_s = {}, {}
    progress.set_total(rounds * len(steps))
    for r in range(settings.warmup):
        for name, step in steps.items():
            with (timer := StepTimer(device)).region():
                losses[name] = step(imgs, noise[r], settings.mask_ratio)
            first_step_s.setdefault(name, timer.seconds()[0])  # with a cold compile for a compiled one
            progress.update()
            progress.report({"warm-up round": f"{r + 1}/{settings.warmup}", "variant": name,
                             "step s": round(timer.seconds()[0], 3)})
    progress.write("bench: measuring each variant's memory peak")
    peaks = {name: step_peak_bytes(device, lambda s=step: s(imgs, noise[0], settings.mask_ratio))
             for name, step in steps.items()}

    synchronize(device)
    names = list(steps)
    timers = {name: StepTimer(device) for name in names}
    every = max(1, settings.steps // 10)  # at most about ten plain lines
    for r in range(settings.steps):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            with timers[name].region():
                losses[name] = steps[name](imgs, noise[settings.warmup + r], settings.mask_ratio)
        progress.update(len(names))
        if (r + 1) % every == 0 or r + 1 == settings.steps:
            progress.report({"timed round": f"{r + 1}/{settings.steps}"})
    times = {name: timer.seconds() for name, timer in timers.items()}  # synchronises once
    progress.write("bench: measuring the peak matmul rate")

    dtype = torch.bfloat16 if settings.precision == "bf16" else torch.float32
    matmul_rate = matmul_flops_per_s(device, dtype)
    achieved = {name: flops[name] * settings.batch / statistics.median(times[name]) for name in names}
    # the peak is the best rate seen: a step faster than the square matmuls (shapes that suit
    # the CPU better, a quieter moment) raises it, so MFU never exceeds 100%
    peak_rate = max(matmul_rate, *achieved.values())
    results = []
    for name in names:
        median = statistics.median(times[name])
        results.append(dict(
            variant=name,
            step_s_median=median,
            step_s=times[name],
            compiled=compiled[name],
            first_step_s=first_step_s.get(name),
            images_per_s=settings.batch / median,
            flops_per_image=flops[name],
            achieved_flops_per_s=achieved[name],
            mfu=achieved[name] / peak_rate,
            saved_activation_bytes=activations[name],
            step_peak_bytes=peaks[name],
            state_bytes=_state_bytes(steps[name].model),
            time_vs_reference=statistics.median(t / ref for t, ref in zip(times[name], times[reference])),
            loss_finite=bool(torch.isfinite(losses[name]).item()),
        ))
    return dict(settings=asdict(settings), reference=reference,
                matmul_flops_per_s=matmul_rate, peak_flops_per_s=peak_rate,
                matmul_dtype=str(dtype).replace("torch.", ""),
                results=results)


def _geometry(model: nn.Module) -> tuple[tuple[int, int], int, int]:
    """(image size, patch size, channels) of ours or of the Hugging Face twin."""
    model = getattr(model, "mae", model)  # the full-head wrapper
    if hasattr(model, "patch_embed"):
        embed = model.patch_embed
        return embed.img_size, embed.patch_size, embed.in_chans
    config = model.hf.config
    return to_2tuple(config.image_size), config.patch_size, config.num_channels


def _state_bytes(model: nn.Module) -> int:
    """Weights plus AdamW's two float32 moments for the trainable ones."""
    params = list(model.parameters())
    weights = sum(p.numel() * p.element_size() for p in params)
    return weights + sum(2 * 4 * p.numel() for p in params if p.requires_grad)
