"""Linear layers whose float32 CPU matmuls go through oneDNN where that is faster.

torch's float32 CPU matmuls go to its BLAS (MKL on x86). On some CPUs (MKL takes its
AVX2 path on non-Intel ones) oneDNN's matmul runs the model's shapes about twice as fast,
IEEE float32 either way; on others it is no faster. So the backend is chosen per process:

    set_matmul_backend("auto")    # default: a short measured probe decides (cached)
    set_matmul_backend("onednn")  # forward and both backward matmuls through oneDNN
    set_matmul_backend("blas")    # torch's default path

The probe's verdict is kept per process, and on disk per (CPU, torch version, threads) in
~/.cache/mae/matmul_backend.json (XDG_CACHE_HOME is honoured), so that every process on a
machine multiplies alike and a resumed run computes what the first one did.

Only float32 CPU tensors outside autocast take oneDNN; bf16, autocast and CUDA calls are
plain `F.linear` whatever the setting. The oneDNN path is a custom op with a fake kernel
and its own backward, so autograd and torch.compile treat it as one opaque linear.
"""

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..util.threads import cpu_name
from .options import MATMUL_BACKENDS

_setting = "auto"
_resolved: str | None = None  # the probe's verdict, once measured
# oneDNN must beat the default by this factor to be chosen: an even result keeps torch's path
PROBE_MARGIN = 1.1


@torch.library.custom_op("mae::onednn_linear", mutates_args=())
def onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x [..., K] @ weight[N, K]^T + bias [N], one oneDNN matmul (strided operands read in place)."""
    flat = x.reshape(-1, x.shape[-1])  # [M, K]
    y = torch.ops.mkldnn._linear_pointwise(flat, weight, bias, "none", [], "")  # [M, N]
    return y.reshape(*x.shape[:-1], weight.shape[0])


@onednn_linear.register_fake
def _(x, weight, bias):
    return x.new_empty(*x.shape[:-1], weight.shape[0])


def _setup_context(ctx, inputs, output):
    x, weight, bias = inputs
    ctx.save_for_backward(x, weight)
    ctx.has_bias = bias is not None


def _backward(ctx, grad):
    x, weight = ctx.saved_tensors
    grad_x = grad_weight = grad_bias = None
    if ctx.needs_input_grad[0]:
        grad_x = onednn_linear(grad, weight.t(), None)  # [..., N] @ [N, K] -> [..., K]
    flat_grad = grad.reshape(-1, grad.shape[-1])  # [M, N]
    if ctx.needs_input_grad[1]:
        flat_x = x.reshape(-1, x.shape[-1])  # [M, K]
        grad_weight = onednn_linear(flat_grad.t(), flat_x.t(), None)  # [N, M] @ [M, K] -> [N, K]
    if ctx.has_bias and ctx.needs_input_grad[2]:
        grad_bias = flat_grad.sum(0)
    return grad_x, grad_weight, grad_bias


onednn_linear.register_autograd(_backward, setup_context=_setup_context)


def set_matmul_backend(name: str) -> None:
    """Choose how float32 CPU linear layers multiply: "auto", "blas" or "onednn"."""
    global _setting, _resolved
    if name not in MATMUL_BACKENDS:
        raise ValueError(f"--matmul-backend must be one of {', '.join(MATMUL_BACKENDS)}, got {name!r}")
    if name == "onednn" and not torch.backends.mkldnn.is_available():
        raise ValueError("--matmul-backend onednn: this torch build has no oneDNN (mkldnn)")
    _setting, _resolved = name, None  # "auto" decides again, on the threads set by then


def matmul_backend() -> str:
    """The backend float32 CPU linear layers use now ("blas" or "onednn"); runs the probe once."""
    global _resolved
    if _setting != "auto":
        return _setting
    if _resolved is None:
        _resolved = cached_probe()
    return _resolved


def cache_path() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mae" / "matmul_backend.json"


def cached_probe() -> str:
    """The probe's verdict for this CPU, torch and thread count: from the cache, else measured and kept."""
    key = f"{cpu_name()} | torch {torch.__version__} | {torch.get_num_threads()} threads"
    path = cache_path()
    try:
        verdicts = json.loads(path.read_text())
    except (OSError, ValueError):
        verdicts = {}
    if verdicts.get(key) in ("blas", "onednn"):
        return verdicts[key]
    verdicts[key] = probe_matmul_backend()
    try:  # best effort: a read-only home only costs the next process another probe
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as tmp:
            json.dump(verdicts, tmp, indent=1)
        os.replace(tmp.name, path)
    except OSError:
        pass
    return verdicts[key]


@torch.compiler.disable
def probe_matmul_backend(rows: int = 512, width: int = 256, rounds: int = 5) -> str:
    """Time a linear layer's forward and backward (width -> 4 x width, as an MLP) through
    each backend, alternating, and return the faster ("blas" unless oneDNN wins by the margin).

    Some tens of milliseconds on a quiet machine; run once per process, on torch's threads.
    """
    if not torch.backends.mkldnn.is_available():
        return "blas"
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(rows, width, generator=gen, requires_grad=True)
    weight = torch.randn(4 * width, width, generator=gen, requires_grad=True)
    bias = torch.zeros(4 * width, requires_grad=True)
    paths = {"blas": F.linear, "onednn": onednn_linear}

    def step(path) -> float:
        start = time.perf_counter()
        path(x, weight, bias).sum().backward()
        return time.perf_counter() - start

    for path in paths.values():  # warm-up: primitive creation, caches
        step(path)
    ratios = []
    for r in range(rounds):
        order = ["blas", "onednn"] if r % 2 else ["onednn", "blas"]
        times = {name: step(paths[name]) for name in order}
        ratios.append(times["blas"] / times["onednn"])
    return "onednn" if statistics.median(ratios) >= PROBE_MARGIN else "blas"


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """F.linear, through oneDNN for float32 CPU tensors outside autocast when chosen."""
    if (x.device.type == "cpu" and x.dtype == torch.float32 and weight.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu") and matmul_backend() == "onednn"):
        return onednn_linear(x, weight, bias)
    return F.linear(x, weight, bias)


class Linear(nn.Linear):
    """nn.Linear (same parameters and keys) whose float32 CPU matmuls follow the backend."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)
