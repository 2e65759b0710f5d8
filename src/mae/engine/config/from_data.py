"""The recipe a training command follows for the settings the user leaves out: chosen from the data.

The paper's recipes (configs/*.yaml, chosen by name: `mae pretrain --config vit_base_800ep`)
are for ImageNet-1k on many GPUs: 800 pretraining epochs at a global batch of 4096 with
lr = blr x batch / 256. On a few hundred images they fail: a batch larger than the data, a
warm-up longer than a short run and, at a small batch, an lr that moves no weight far enough
to learn anything. Each setting left out (no flag, no YAML key: None in the config) is chosen
here from the number of training images and processes; a setting given is kept as given.

- batch size: the paper's per-process batch, or less, so that an epoch holds 8 steps or more;
- epochs: enough for a number of optimizer steps (2000 pretraining, 1000 downstream), at most
  the paper's epochs, and at least the warm-up given;
- warm-up: the paper's share of the epochs (40 of 800, 5 of 100, 10 of 90);
- lr: the paper's blr x batch / 256, raised (up to the paper's own peak lr) until the whole
  schedule moves a weight by 1 or more: an AdamW step moves each weight by about lr and a LARS
  step by 0.001 x lr of the weight's norm, so warm-up + cosine move it by about
  lr x steps / 2 (x 0.001 for LARS), the "movement" below;
- fine-tuning: mixup and cutmix (the paper's 0.8 / 1.0) only with 1000 or more training
  images per class; on less data they keep the training loss from falling.

On resume nothing is chosen anew: each setting left out is the run's own, from its checkpoint
(`resumed_settings`), so a resume that raises --epochs keeps the run's batch, warm-up and lr;
`schedule_change` says what the new length does to the schedule.

`warn_low_lr` says when an lr given is 10x or more below the one this rule gives;
`warn_short_run`, when a run's warm-up lasts to its end, or a run has under a tenth of the
steps the automatic schedule chooses.
"""

import dataclasses
import math
import warnings
from dataclasses import dataclass

from ...util.text import plural
from ..optim.scaling import resolve_batch, scaled_lr
from ..optim.schedules import warmup_cosine
from .classifier import FinetuneConfig, LinprobeConfig
from .pretrain import PretrainConfig

MIN_EPOCH_STEPS = 8
TARGET_MOVEMENT = 1.0  # how far (lr x steps / 2, x trust for LARS) a run that learns moves a weight
TOO_LOW = 10  # warn about an lr this many times below the one the run trains with
TOO_SHORT = 10  # warn about a run of this many times fewer steps than the automatic schedule's
MIXUP_IMAGES_PER_CLASS = 1000
LARS_TRUST = 1e-3  # LARS's trust coefficient (mae.engine.optim.lars)
RECIPE_FIELDS = ("epochs", "warmup_epochs", "batch_size", "blr", "lr", "mixup", "cutmix")  # None: left out


class RecipeWarning(UserWarning):
    """A setting that will keep the run from learning; shown as one plain line."""


@dataclass(frozen=True)
class PaperRecipe:
    name: str  # the config in configs/
    epochs: int
    warmup_epochs: float
    batch_size: int  # per process
    global_batch: int
    blr: float
    target_steps: int  # optimizer steps the chosen recipe aims for
    trust: float = 1.0  # LARS: its trust coefficient
    min_batch: int = 1  # 2 where the head has BatchNorm

    @property
    def peak_lr(self) -> float:
        return scaled_lr(self.blr, self.global_batch)


PAPER = {
    PretrainConfig: PaperRecipe("pretrain_vit_base_800ep", 800, 40, 64, 4096, 1.5e-4, 2000),
    FinetuneConfig: PaperRecipe("finetune_vit_base", 100, 5, 32, 1024, 5e-4, 1000),
    LinprobeConfig: PaperRecipe("linprobe_vit_base", 90, 10, 512, 16384, 0.1, 1000, trust=LARS_TRUST,
                                 min_batch=2),
}


def paper_recipe(config) -> PaperRecipe:
    return PAPER[type(config)]


def movement(lr: float, total_steps: int, trust: float = 1.0) -> float:
    """About how far warm-up + cosine at peak `lr` move a weight in `total_steps` steps."""
    return lr * trust * total_steps / 2


def trainable_lr(paper: PaperRecipe, global_batch: int, total_steps: int) -> float:
    """The lr that this batch and step count train with: the paper's blr x batch / 256, raised
    towards a movement of TARGET_MOVEMENT, at most the paper's own peak lr."""
    needed = 2 * TARGET_MOVEMENT / (paper.trust * total_steps)
    return min(paper.peak_lr, max(scaled_lr(paper.blr, global_batch), needed))


def _power_of_two_at_most(n: float) -> int:
    return 2 ** int(math.log2(n)) if n >= 1 else 1


def automatic_epochs(paper: PaperRecipe, epoch_steps: int) -> tuple[int, str]:
    """(the epochs the recipe chooses for this many steps per epoch, why): about
    `paper.target_steps` steps, at most the paper's epochs."""
    wanted = math.ceil(paper.target_steps / epoch_steps)
    if wanted > paper.epochs:
        return paper.epochs, f"the paper's {paper.epochs}"
    return wanted, f"about {paper.target_steps} steps"


def _batch_size(config, paper: PaperRecipe, num_images: int, world_size: int) -> tuple[int, str]:
    if config.effective_batch is not None:  # the largest batch <= the paper's that divides it
        per_process = max(1, config.effective_batch // world_size)
        size = max(b for b in range(1, min(paper.batch_size, per_process) + 1) if per_process % b == 0)
        return size, (f"the largest that divides --effective-batch {config.effective_batch} over "
                      f"{world_size} process(es)")
    fit = max(paper.min_batch, _power_of_two_at_most(num_images / (MIN_EPOCH_STEPS * world_size * config.accum_iter)))
    if fit >= paper.batch_size:
        return paper.batch_size, "the paper's per process"
    return fit, f"the paper's {paper.batch_size} per process would leave fewer than {MIN_EPOCH_STEPS} steps per epoch"


def choose_recipe(config, num_images: int, world_size: int = 1, num_classes: int | None = None):
    """(the config with every left-out setting chosen, one line per choice saying why)."""
    paper = paper_recipe(config)
    chosen, why = {}, []
    batch_size = config.batch_size
    if batch_size is None:
        batch_size, reason = _batch_size(config, paper, num_images, world_size)
        chosen["batch_size"] = batch_size
        why.append(f"batch size {batch_size}: {reason}")
    accum, global_batch = resolve_batch(batch_size, config.accum_iter, config.effective_batch, world_size)
    epoch_steps = max(1, num_images // global_batch)
    epochs = config.epochs
    if epochs is None:
        automatic, limit = automatic_epochs(paper, epoch_steps)
        epochs = max(automatic, math.ceil(config.warmup_epochs or 0))
        chosen["epochs"] = epochs
        why.append(f"epochs {epochs}: {epoch_steps} steps per epoch, {limit}")
    if config.warmup_epochs is None:
        share = paper.warmup_epochs / paper.epochs
        chosen["warmup_epochs"] = round(epochs * share, 4)
        why.append(f"warm-up {chosen['warmup_epochs']:g} epochs: {share:.1%} of the epochs, as the paper's "
                   f"{paper.warmup_epochs:g} of {paper.epochs}")
    if config.blr is None and config.lr is None:
        steps = epochs * epoch_steps
        paper_lr = scaled_lr(paper.blr, global_batch)
        lr = trainable_lr(paper, global_batch, steps)
        chosen["blr"] = float(f"{lr * 256 / global_batch:.4g}")
        reason = ("the paper's blr x batch / 256" if lr == paper_lr else
                  f"the paper's peak lr (at batch {paper.global_batch})" if lr == paper.peak_lr else
                  f"so that {steps} steps move a weight by {TARGET_MOVEMENT:g} (the paper's "
                  f"blr {paper.blr:g} x {global_batch} / 256 = {paper_lr:.3g} would move it by "
                  f"{movement(paper_lr, steps, paper.trust):.2g})")
        why.append(f"lr {scaled_lr(chosen['blr'], global_batch):.3g} (blr {chosen['blr']:g}): {reason}")
    if isinstance(config, FinetuneConfig) and (config.mixup is None or config.cutmix is None):
        per_class = num_images / max(1, num_classes or 1)
        on = per_class >= MIXUP_IMAGES_PER_CLASS
        for name, paper_value in (("mixup", 0.8), ("cutmix", 1.0)):
            if getattr(config, name) is None:
                chosen[name] = paper_value if on else 0.0
        why.append(f"mixup {chosen.get('mixup', config.mixup):g}, cutmix {chosen.get('cutmix', config.cutmix):g}: "
                   f"{per_class:.0f} training images per class ({'at least' if on else 'fewer than'} "
                   f"{MIXUP_IMAGES_PER_CLASS})")
    if not chosen:
        return config, []
    header = (f"recipe for {num_images} training images on {world_size} process(es), for the settings not "
              f"given (each has a flag; the paper's: --config {paper.name.split('_', 1)[1]}):")
    return dataclasses.replace(config, **chosen), [header, *("  " + line for line in why)]


def resumed_settings(config, saved: dict, checkpoint) -> tuple:
    """(the config with each setting left out taken from `saved`, the config of the run being resumed
    from `checkpoint`; one line saying which). Those the saved config lacks stay None, for the recipe."""
    taken = {name: saved[name] for name in RECIPE_FIELDS
             if hasattr(config, name) and getattr(config, name) is None and saved.get(name) is not None}
    if not taken:
        return config, []
    warmup = taken.get("warmup_epochs")
    if warmup is not None and config.epochs is not None and config.epochs < warmup:
        raise ValueError(f"--epochs {config.epochs} would end the run inside its own warm-up of {warmup:g} epochs "
                         f"(from {checkpoint}); resume with --epochs {math.ceil(warmup)} or more")
    shown = ", ".join(f"{name.replace('_', ' ')} {value:g}" for name, value in taken.items())
    return dataclasses.replace(config, **taken), [f"resuming: the run's own settings from {checkpoint}, "
                                                  f"as none is given: {shown}"]


def schedule_change(config, saved: dict, step: int, epoch_steps: int, base_lr: float) -> list[str]:
    """What another --epochs on resume does to the lr schedule, said in one line (none if the same)."""
    old = saved.get("epochs")
    if old is None or old == config.epochs:
        return []
    total = config.epochs * epoch_steps
    if step >= total:
        return [f"--epochs {old} -> {config.epochs}: the run has done {step} steps, which is already "
                f"{config.epochs} epochs; nothing is trained"]

    def lr_at(epochs):
        return warmup_cosine(step / epoch_steps, base_lr, config.min_lr, config.warmup_epochs, epochs)

    before, after = lr_at(old), lr_at(config.epochs)
    if before == after:  # inside the warm-up, which both share
        now = f"at step {step} the lr is {after:.3g} under both schedules"
    else:
        now = f"at step {step} the lr jumps from {before:.3g} (the old schedule's) to {after:.3g}"
    warmup = config.warmup_epochs  # at most the epochs (validate)
    peak_step = math.ceil(warmup * epoch_steps - 1e-9)  # the first step at the peak; 1e-9: float noise
    if config.epochs == warmup:
        then = (f"then rises to its peak {base_lr:.3g} at step {total}, where its {warmup:g}-epoch warm-up and the "
                "run end together: the lr never decays")
    elif step / epoch_steps < warmup:
        then = (f"then rises to its peak {base_lr:.3g} at step {peak_step} and decays to {config.min_lr:g} "
                f"at step {total}")
    else:
        then = f"then decays to {config.min_lr:g} at step {total}"
    how = "stretched" if config.epochs > old else "shortened"
    return [f"--epochs {old} -> {config.epochs}: the warm-up + cosine lr schedule is {how} over "
            f"{config.epochs} epochs ({total} steps), not restarted: {now}, {then}"]


def warn_low_lr(config, lr: float, global_batch: int, total_steps: int) -> None:
    """A RecipeWarning when `lr` is 10x or more below what this batch and step count train with."""
    paper = paper_recipe(config)
    better = trainable_lr(paper, global_batch, total_steps)
    if lr * TOO_LOW >= better:
        return
    rule = "0.001 x lr x steps / 2 for LARS" if paper.trust != 1 else "lr x steps / 2 for AdamW"
    warnings.warn(RecipeWarning(
        f"lr {lr:.3g} is {better / lr:.0f}x below what a global batch of {global_batch} and {total_steps} "
        f"steps train with: it moves a weight by about {movement(lr, total_steps, paper.trust):.2g} in total "
        f"({rule}), and runs that learn move it by {TARGET_MOVEMENT:g} or more. Try --lr {better:.3g}, or "
        "leave out --blr and --lr for the recipe chosen from the data"), stacklevel=2)


def warn_short_run(config, epoch_steps: int) -> None:
    """RecipeWarnings for a run too short to learn: one whose warm-up lasts to its end (the lr only
    rises), one with under 1 / TOO_SHORT of the automatic schedule's steps."""
    epochs, warmup = config.epochs, config.warmup_epochs  # warmup <= epochs (validate)
    if epochs == warmup:
        warnings.warn(RecipeWarning(
            f"--epochs {epochs} is as long as the warm-up (--warmup-epochs {warmup:g}): the lr rises for the whole "
            f"run, to its peak at the last step, and never decays; give --epochs above {warmup:g} or a shorter "
            "--warmup-epochs"), stacklevel=2)
    automatic, _ = automatic_epochs(paper_recipe(config), epoch_steps)
    total, automatic_total = epochs * epoch_steps, automatic * epoch_steps
    if total * TOO_SHORT < automatic_total:
        warnings.warn(RecipeWarning(
            f"{total} steps ({plural(epochs, 'epoch')} of {epoch_steps}) are under 1/{TOO_SHORT} of the "
            f"{automatic_total} steps ({plural(automatic, 'epoch')}) that the automatic schedule chooses for this "
            "data at this batch: too few to learn much; leave out --epochs for it"), stacklevel=2)
