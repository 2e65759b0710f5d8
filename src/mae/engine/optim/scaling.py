"""Batch and learning-rate scaling, as the official recipe: the global batch split over processes and
accumulation steps, and

    lr = blr * effective_batch / 256
"""


def resolve_batch(batch_size: int, accum_iter: int, effective_batch: int | None, world_size: int) -> tuple[int, int]:
    """(accum_iter, effective batch) for this many processes.

    With `effective_batch` given, accumulation is derived from it and must come out whole.
    """
    per_step = batch_size * world_size
    if effective_batch is None:
        return accum_iter, per_step * accum_iter
    if effective_batch % per_step:
        raise ValueError(
            f"--effective-batch {effective_batch} is not divisible by --batch-size {batch_size} x "
            f"{world_size} process(es) = {per_step}; choose a batch size that divides it"
        )
    derived = effective_batch // per_step
    if accum_iter not in (1, derived):
        raise ValueError(
            f"--accum-iter {accum_iter} contradicts --effective-batch {effective_batch} with "
            f"--batch-size {batch_size} on {world_size} process(es) (which needs {derived}); give one of them"
        )
    return derived, effective_batch


def scaled_lr(blr: float, effective_batch: int) -> float:
    """The linear scaling rule of the paper (Goyal et al.): lr = blr * batch / 256."""
    return blr * effective_batch / 256
