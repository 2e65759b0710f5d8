"""Training machinery shared by the commands: config, optimisation, checkpoints,
distributed helpers, metrics and progress, and the pretraining loop."""

from ..util.lazy import lazy_exports

_EXPORTS = {
    "CheckpointManager": ".run.checkpoints",
    "DistEnv": ".compute.distributed",
    "MetricsLogger": ".run.metrics",
    "PretrainConfig": ".config.pretrain",
    "PretrainResult": ".loops.pretrain",
    "Progress": ".run.metrics",
    "TrainingDiverged": ".run.plan",
    "adamw": ".optim.optimizers",
    "add_config_arguments": ".config.base",
    "autocast": ".compute.precision",
    "config_from_args": ".config.base",
    "grad_scaler": ".compute.precision",
    "load_config": ".config.base",
    "load_model_state": "..storage.checkpoint_folder",
    "load_training_state": "..storage.checkpoint_folder",
    "make_config": ".config.base",
    "param_groups": ".optim.optimizers",
    "pretrain": ".loops.pretrain",
    "read_metrics": ".run.metrics",
    "resolve_batch": ".optim.scaling",
    "resolve_precision": ".compute.precision",
    "save_config": ".config.base",
    "scaled_lr": ".optim.scaling",
    "set_lr": ".optim.schedules",
    "warmup_cosine": ".optim.schedules",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
