"""Every setting of `mae bench`: what is measured (model, size, batch, precision, compile) and
beside what (--compare). The defaults measure the step a long run takes: compiled, in bf16
where the machine computes it natively (a GPU, or a CPU with AVX-512 bf16 or AMX), else fp32."""

from dataclasses import dataclass

from ...models.options import check_mask_ratio
from ...models.zoo import model_names
from .base import Size, check_seed, optional, require, setting
from .common import matmul_backend_setting, threads_setting

BENCH_PRECISIONS = ("auto", "fp32", "bf16")
# what a benchmark can measure; built by benchmarking/variants.py
VARIANTS = ("ours", "ours-compiled", "full-head", "mask-token", "hf", "hf-eager", "hf-matmul")
COMPARED = VARIANTS[1:]  # beside ours


@dataclass
class BenchConfig:
    model: str = setting("mae_vit_base_patch16", "named model: " + ", ".join(model_names()), metavar="NAME")
    img_size: Size = setting(224, "input resolution in pixels: one number (a square) or two (height width)")
    batch_size: int = setting(32, "images per step", aliases=("--batch",))
    mask_ratio: float = setting(0.75, "fraction of patches removed")
    decoder_depth: int | None = optional("override the model's decoder depth")
    precision: str = setting("auto", "fp32; bf16 (autocast, float32 master weights); or auto: bf16 on a GPU "
                             "or a CPU with its own bf16 matmuls (AVX-512 bf16, AMX), else fp32",
                             choices=BENCH_PRECISIONS)
    compile: bool = setting(True, "torch.compile every model, as a long run does (the warm-up steps "
                            "compile; --no-compile measures eager mode)")
    fused_attention: bool | None = optional("force SDPA (--fused-attention) or the plain matmul-softmax path "
                                            "(--no-fused-attention); default: per layer, the faster for the "
                                            "device")
    device: str = setting("auto", "cpu, cuda, cuda:N, or auto (a GPU when there is one, else cpu)")
    compare: tuple[str, ...] = setting((), "also run these variants, steps alternating with ours (the flag may "
                                       f"repeat): {', '.join(COMPARED)}", choices=COMPARED, metavar="VARIANT",
                                       repeatable=True)
    steps: int = setting(10, "timed steps per variant (median reported)")
    warmup: int = setting(2, "untimed steps per variant first (compilation happens here)")
    threads: int | None = threads_setting()
    matmul_backend: str = matmul_backend_setting()
    seed: int = setting(0, "seed of the weights, images and masks")
    out: str | None = optional("write the results here as JSON, and as a Markdown table beside it (.md)",
                               metavar="FILE.json")

    def __post_init__(self):
        require(self, self.model in model_names(), "model", f"is unknown; known models: {', '.join(model_names())}")
        require(self, self.batch_size >= 1, "batch_size", "must be at least 1")
        require(self, self.steps >= 1, "steps", "must be at least 1")
        require(self, self.warmup >= 0, "warmup", "must not be negative")
        require(self, not self.compile or self.warmup >= 1, "warmup",
                "must be at least 1 with --compile, or the compilation would be timed (or pass --no-compile)")
        for name in ("decoder_depth", "threads"):
            require(self, getattr(self, name) is None or getattr(self, name) >= 1, name, "must be at least 1")
        try:
            check_mask_ratio(self.mask_ratio)
        except ValueError as err:
            raise ValueError(f"--mask-ratio: {err}") from None
        check_seed(self.seed)
