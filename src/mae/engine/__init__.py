"""Training machinery shared by the commands: config, optimisation, checkpoints,
distributed helpers, metrics and progress, and the pretraining loop."""

from .run.checkpoints import CheckpointManager
from ..storage.checkpoint_folder import load_model_state, load_training_state
from .config.base import add_config_arguments, config_from_args, load_config, make_config, save_config
from .compute.distributed import DistEnv
from .run.metrics import MetricsLogger, Progress, read_metrics
from .optim.optimizers import adamw, param_groups, resolve_batch, scaled_lr, set_lr, warmup_cosine
from .compute.precision import autocast, grad_scaler, resolve_precision
from .loops.pretrain import PretrainResult, pretrain
from .config.pretrain import PretrainConfig
from .run.plan import TrainingDiverged

__all__ = [
    "CheckpointManager",
    "DistEnv",
    "MetricsLogger",
    "PretrainConfig",
    "PretrainResult",
    "Progress",
    "TrainingDiverged",
    "adamw",
    "add_config_arguments",
    "autocast",
    "config_from_args",
    "grad_scaler",
    "load_config",
    "load_model_state",
    "load_training_state",
    "make_config",
    "param_groups",
    "pretrain",
    "read_metrics",
    "resolve_batch",
    "resolve_precision",
    "save_config",
    "scaled_lr",
    "set_lr",
    "warmup_cosine",
]
