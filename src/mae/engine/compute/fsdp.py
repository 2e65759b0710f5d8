"""FSDP2 (`torch.distributed.fsdp.fully_shard`): parameters, gradients and optimizer state
sharded over the processes, as an alternative to DDP under torchrun (`--fsdp`).

Each encoder and decoder block is one FSDP unit (its parameters are all-gathered just
before it runs and freed after), the root holds the rest (patch embedding, tokens, norms,
decoder embedding and prediction). With bf16 the units keep fp32 master weights, compute
with bf16 copies and reduce gradients in fp32; the forward still runs under autocast, so
the ops autocast keeps in fp32 (norms, softmax, the loss) stay there, as under DDP.

One process has nothing to shard: the model stays as it is, and only the checkpoint format
(sharded, `sharded_checkpoint`) follows `--fsdp`.
"""

import torch
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor

from .distributed import DistEnv, all_reduce_sum


def mixed_precision(precision: str, root: bool = False) -> MixedPrecisionPolicy:
    """bf16 params / fp32 gradient reduction for bf16; full fp32 otherwise. The root does not
    cast its inputs: the mask noise must keep fp32's resolution (bf16 would tie its values)."""
    if precision == "fp16":
        raise ValueError("--fsdp supports --precision bf16 or fp32 (fp16 would need a sharded "
                         "gradient scaler); choose bf16 on GPUs that have it, else fp32")
    dtype = torch.bfloat16 if precision == "bf16" else None
    reduce = torch.float32 if precision == "bf16" else None
    return MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=reduce, cast_forward_inputs=not root)


def shard(model: torch.nn.Module, env: DistEnv, precision: str) -> torch.nn.Module:
    """`model` with every block, then the root, fully sharded in place (one process: unchanged)."""
    mixed_precision(precision)  # refuses fp16 whatever the process count
    if not env.distributed:
        return model
    blocks = [*model.blocks, *getattr(model, "decoder_blocks", [])]
    for block in blocks:
        fully_shard(block, mp_policy=mixed_precision(precision))
    fully_shard(model, mp_policy=mixed_precision(precision, root=True))
    return model


def is_sharded(model: torch.nn.Module) -> bool:
    return isinstance(getattr(model, "_orig_mod", model), FSDPModule)  # through torch.compile too


def local(tensor: torch.Tensor) -> torch.Tensor:
    """This process's part of a sharded tensor (the tensor itself otherwise)."""
    return tensor.to_local() if isinstance(tensor, DTensor) else tensor


def weights_finite(model: torch.nn.Module, env: DistEnv) -> bool:
    """Whether every weight is finite, the same answer in every process (each checks its shards)."""
    bad = sum(int(not bool(local(p.detach()).isfinite().all())) for p in model.parameters())
    return int(all_reduce_sum(torch.tensor(bad), env)) == 0


def full_model(model: torch.nn.Module, env: DistEnv, build) -> torch.nn.Module | None:
    """For work done by rank 0 alone (pictures, the k-NN monitor): the model itself when it is
    not sharded; else, collectively, its full weights gathered into `build()` (a fresh model of
    the same architecture) on rank 0, and None on the others."""
    if not is_sharded(model):
        return model if env.is_main else None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not env.is_main:
        return None
    copy = build()
    copy.load_state_dict(full)
    return copy.to(next(local(p) for p in model.parameters()).device).train(model.training)

