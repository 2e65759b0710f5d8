"""Speed measurement: training-step throughput, FLOPs, MFU and memory, side by side.

    from mae.benchmarking import BenchSettings, build_variants, run_benchmark
    variants = build_variants(["ours", "hf"], "mae_vit_base_patch16", mask_ratio=0.75)
    run = run_benchmark(BenchSettings(batch=8, precision="bf16"), variants)
"""

from .report import machine, markdown_table, publish, write_results
from .runner import BenchSettings, run_benchmark
from .variants import VARIANTS, build_variants, huggingface_twin, mask_token_variant, set_fused_attention, share_parts

__all__ = [
    "VARIANTS",
    "BenchSettings",
    "build_variants",
    "huggingface_twin",
    "machine",
    "mask_token_variant",
    "markdown_table",
    "publish",
    "run_benchmark",
    "set_fused_attention",
    "share_parts",
    "write_results",
]
