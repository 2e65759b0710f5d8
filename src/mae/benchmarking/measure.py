"""What a benchmark measures: step times, the machine's matmul rate, FLOPs and memory.

Nothing here synchronises a CUDA device inside a timed step: CUDA steps are timed with
events that are read after one synchronisation at the end.
"""

import contextlib
import time

import torch
import torch.nn as nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

from ..models.linear import onednn_linear
from ..models.vit import Attention


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepTimer:
    """Times regions: wall clock on CPU, CUDA events (resolved once, at the end) on a GPU."""

    def __init__(self, device: torch.device):
        self.device = device
        self.marks: list = []

    @contextlib.contextmanager
    def region(self):
        if self.device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            yield
            end.record()
            self.marks.append((start, end))
        else:
            start = time.perf_counter()
            yield
            self.marks.append(time.perf_counter() - start)

    def seconds(self) -> list[float]:
        """All region times in order; synchronises once."""
        if self.device.type != "cuda":
            return list(self.marks)
        synchronize(self.device)
        return [start.elapsed_time(end) / 1000 for start, end in self.marks]


CPU_SIZES = (512, 1024, 2048)  # the square matmul grows through these while it is quick
QUICK_MATMUL_S = 0.25


def matmul_flops_per_s(device: torch.device, dtype: torch.dtype, size: int | None = None,
                       repeats: int = 5) -> float:
    """The best rate of a square [size x size] matmul in `dtype` through every backend a step
    may use (torch's BLAS, and oneDNN for float32 on CPU): this machine's practical peak.

    Left out, the size is 8192 on a GPU; on CPU it grows from 512 to 2048 while one matmul
    takes under QUICK_MATMUL_S, so that a dtype the CPU only emulates (bf16 without AVX-512:
    ~1 GFLOP/s, 17 s for one 2048 matmul) is measured in seconds, not minutes."""
    sizes = (size,) if size else (8192,) if device.type == "cuda" else CPU_SIZES
    best = 0.0
    for n in sizes:
        best = max(best, square_matmul_rate(device, dtype, n, repeats))
        if 2 * n**3 / best >= QUICK_MATMUL_S:
            break
    return best


def square_matmul_rate(device: torch.device, dtype: torch.dtype, size: int, repeats: int) -> float:
    """FLOP/s of the fastest [size x size] matmul of `repeats` timed, over the backends."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device, dtype)
    b = torch.randn(size, size, generator=gen).to(device, dtype)
    backends = [torch.matmul]
    if device.type == "cpu" and dtype == torch.float32 and torch.backends.mkldnn.is_available():
        backends.append(onednn_linear)  # a @ b.T: the same FLOPs
    best = 0.0
    for backend in backends:
        args = (a, b) if backend is torch.matmul else (a, b, None)
        for _ in range(2):  # warm-up: kernel selection, clocks, caches
            backend(*args)
        timer = StepTimer(device)
        for _ in range(repeats):
            with timer.region():
                backend(*args)
        best = max(best, 2 * size**3 / min(timer.seconds()))
    return best


@contextlib.contextmanager
def plain_attention(model: nn.Module):
    """Run every attention layer on its plain matmul-softmax path (restored afterwards).

    FLOPs are counted on this path so that the count belongs to the model, not to the
    kernel a device picks (the flop counter does not know every fused kernel).
    """
    ours = [(m, m.fused) for m in model.modules() if isinstance(m, Attention)]
    theirs = [(m, m.config._attn_implementation) for m in model.modules()
              if hasattr(m, "set_attn_implementation") and hasattr(m, "config")]
    for m, _ in ours:
        m.fused = False
    for m, _ in theirs:
        m.set_attn_implementation("eager")
    try:
        yield
    finally:
        for m, fused in ours:
            m.fused = fused
        for m, implementation in theirs:
            m.set_attn_implementation(implementation)


def training_flops_per_image(model: nn.Module, img_size: tuple[int, int], in_chans: int,
                             mask_ratio: float, batch: int = 2) -> float:
    """Forward + backward FLOPs per image, counted by torch.utils.flop_counter.

    Runs on meta tensors (no memory, no compute), so it is instant even for ViT-H.
    """
    meta = {name: torch.empty_like(p, device="meta").requires_grad_(p.requires_grad)
            for name, p in model.named_parameters()}
    meta.update({name: torch.empty_like(b, device="meta") for name, b in model.named_buffers()})
    imgs = torch.empty(batch, in_chans, *img_size, device="meta")
    with plain_attention(model), FlopCounterMode(display=False) as counter:
        out = functional_call(model, meta, (imgs, mask_ratio))
        out.loss.backward()
    return counter.get_total_flops() / batch


def saved_activation_bytes(model: nn.Module, step_forward) -> int:
    """Bytes the forward pass keeps for backward (activations, casts), parameters excluded.

    `step_forward()` runs the forward and returns the loss; storages are counted once.
    """
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params and t.device.type != "meta":
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = step_forward()
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(storages.values())


def step_peak_bytes(device: torch.device, step) -> int | None:
    """CUDA only: memory a training step allocates above what was held before it."""
    if device.type != "cuda":
        return None
    synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before
