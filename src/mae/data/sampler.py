"""Which samples each process reads at each step: a function of (seed, epoch), nothing else.

Training order. Epoch e visits a permutation of the dataset drawn from (seed, e); its
optimizer step k takes the `global_batch` samples at positions [k * global_batch, ...).
Within a step, micro-step m of rank r reads the `batch_size` positions starting at
(m * world_size + r) * batch_size. So one process with batch B, two with B/2 each, and one
with B/2 and two accumulation steps all see the same samples in every optimizer step, and
a run resumed at any step reads exactly what the uninterrupted run would have read.
The remainder of an epoch that does not fill a global batch is not used in that epoch.

The samplers yield lists of (epoch, index) keys; the dataset derives each sample's
augmentation from the same key.
"""

import numpy as np

_STREAM = 0x0D3E  # keeps the order draws apart from the other streams seeded from `seed`


def epoch_order(num_samples: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, _STREAM, epoch]).permutation(num_samples)


def steps_per_epoch(num_samples: int, batch_size: int, world_size: int = 1, accum_iter: int = 1,
                    default_fits: bool = True) -> int:
    """Optimizer steps per epoch (the remainder that does not fill a global batch is unused).
    `default_fits`: the command's default batch is chosen to fit the data (the message says so)."""
    global_batch = batch_size * world_size * accum_iter
    if num_samples < global_batch:
        fits = num_samples // (world_size * accum_iter)
        advice = f"use --batch-size {fits} or less"
        if default_fits:
            advice += " (or leave it out: the default fits the data)"
        if not fits:
            advice = "use more data or fewer processes / accumulation steps"
        raise ValueError(
            f"the dataset has {num_samples} images, fewer than one global batch of "
            f"{global_batch} ({batch_size} per process x {world_size} process(es) x "
            f"{accum_iter} accumulation step(s)); {advice}"
        )
    return num_samples // global_batch


class TrainBatches:
    """Batches of (epoch, index) for one rank, from optimizer step `start_step` to the end."""

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        epochs: int,
        seed: int = 0,
        world_size: int = 1,
        rank: int = 0,
        accum_iter: int = 1,
        start_step: int = 0,
    ):
        self.num_samples, self.batch_size, self.epochs, self.seed = num_samples, batch_size, epochs, seed
        self.world_size, self.rank, self.accum_iter, self.start_step = world_size, rank, accum_iter, start_step
        self.global_batch = batch_size * world_size * accum_iter
        self.steps_per_epoch = steps_per_epoch(num_samples, batch_size, world_size, accum_iter)
        self.total_steps = self.steps_per_epoch * epochs

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step) * self.accum_iter

    def __iter__(self):
        order, order_epoch = None, None
        for step in range(self.start_step, self.total_steps):
            epoch, k = divmod(step, self.steps_per_epoch)
            if epoch != order_epoch:
                order, order_epoch = epoch_order(self.num_samples, self.seed, epoch), epoch
            for micro in range(self.accum_iter):
                first = k * self.global_batch + (micro * self.world_size + self.rank) * self.batch_size
                yield [(epoch, int(i)) for i in order[first: first + self.batch_size]]


class EvalBatches:
    """Every sample once, in order, for evaluation: rank r takes indices r, r + W, r + 2W, ...

    Ranks may differ by one sample; sum metrics over ranks rather than averaging means.
    """

    def __init__(self, num_samples: int, batch_size: int, world_size: int = 1, rank: int = 0):
        self.indices = list(range(rank, num_samples, world_size))
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)

    def __iter__(self):
        for first in range(0, len(self.indices), self.batch_size):
            yield [(0, i) for i in self.indices[first: first + self.batch_size]]
