"""Config dataclasses <-> command-line flags <-> YAML files.

A command's settings are one dataclass; each field becomes a flag (`batch_size` ->
`--batch-size`) whose help is the field's `metadata["help"]`. Precedence: the field's
default < the YAML file given with `--config` < flags on the command line. The resolved
config is written back as YAML, which `--config` accepts again.

Supported field types: bool (`--flag` / `--no-flag`), int, float, str, `X | None`
(`none` on the command line), fixed-length tuples (`--crop-scale 0.2 1.0`) and lists,
`tuple[X, ...]` (`--mask-ratios 0.5 0.75`; a YAML list; `choices` apply to each item), and
`Size` (`--img-size 224` for a square, `--img-size 160 256` for height x width; in YAML a
number or a list of two; kept as an int when square, else as (height, width)).
"""

import argparse
import dataclasses
import difflib
import functools
import importlib.resources
import math
import types
import typing
from pathlib import Path

import yaml

from ...storage.files import write_text_atomic

NONE_WORDS = ("none", "null")
Size = int | tuple[int, int]  # an image size: a square's side, or (height, width)
# the paper recipes and demos, shipped inside the package (configs/ in a clone links here): --config NAME
CONFIG_DIR = Path(str(importlib.resources.files("mae") / "configs"))


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def optional(help_text: str, **extra):
    """A setting left out (None) unless given: chosen from the data, or not used."""
    return dataclasses.field(default=None, metadata=dict(help=help_text, **extra))


def setting(default, help_text: str, **extra):
    """A setting with its default and its --help text (and e.g. choices=..., or default_from=... where
    the default depends on the machine: how it is chosen)."""
    return dataclasses.field(default=default, metadata=dict(help=help_text, **extra))


def require(config, ok: bool, name: str, what: str) -> None:
    """A ValueError naming the flag and the value given, unless `ok`."""
    if not ok:
        raise ValueError(f"{flag(name)} {what}, got {getattr(config, name)!r}")


def may_change_on_resume(cls) -> tuple[str, ...]:
    """The settings a resumed run may set differently (field metadata `resumable=True`); every
    other setting must be the checkpoint's run's."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("resumable"))


RESUME_HELP = (
    "'auto': continue from the newest checkpoint in the run directory that verifies (if there is "
    "one); or a checkpoint / run directory. A resume must use the run's data and settings, except "
    "(the global batch staying the same): {resumable}"
)


def _field_type(cls, name: str):
    """(base type, optional?) for a field: `int | None` -> (int, True)."""
    hint = typing.get_type_hints(cls)[name]
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]), True
    return hint, False


def parse_size(value, where: str) -> Size:
    """One side (a square) or two (height, width) -> an int when square, else (height, width)."""
    sides = list(value) if isinstance(value, (list, tuple)) else [value]
    if len(sides) not in (1, 2):
        raise ValueError(f"{where} needs one number (a square) or two (height width), got {value!r}")
    height, width = (_scalar(int, side, where) for side in (sides * 2)[:2])
    return height if height == width else (height, width)


class SizeArgument(argparse.Action):
    """A Size flag: argparse's nargs="+" with a third value refused; --help shows `SIZE [WIDTH]`."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs="+", metavar=("SIZE", "WIDTH"), **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        if len(values) > 2:
            raise argparse.ArgumentError(self, "takes one number (a square) or two (height width), got "
                                               f"{len(values)}: {' '.join(values)}")
        setattr(namespace, self.dest, values)


def coerce(cls, name: str, value, source: str):
    """A value from YAML or the command line -> the field's type, or a ValueError naming it."""
    base, optional = _field_type(cls, name)
    where = f"{source}: {name} ({flag(name)})"
    if value is None or (optional and isinstance(value, str) and value.lower() in NONE_WORDS):
        if optional:
            return None
        raise ValueError(f"{where} may not be empty")
    if base == Size:
        return parse_size(value, where)
    choices = next(f for f in dataclasses.fields(cls) if f.name == name).metadata.get("choices")
    if typing.get_origin(base) is tuple and typing.get_args(base)[1:] == (Ellipsis,):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where} needs a list of values, got {value!r}")
        items = tuple(_scalar(typing.get_args(base)[0], v, where) for v in value)
        for item in items:
            if choices and item not in choices:
                raise ValueError(f"{where} items must be among {', '.join(map(str, choices))}; got {item!r}")
        return items
    if typing.get_origin(base) is tuple:
        item_types = typing.get_args(base)
        if not isinstance(value, (list, tuple)) or len(value) != len(item_types):
            raise ValueError(f"{where} needs {len(item_types)} values, got {value!r}")
        return tuple(_scalar(t, v, where) for t, v in zip(item_types, value))
    value = _scalar(base, value, where)
    if choices and value not in choices:
        raise ValueError(f"{where} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value


def _scalar(kind, value, where: str):
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off"):
            return value.lower() in ("true", "yes", "on")
        raise ValueError(f"{where} must be true or false, got {value!r}")
    if kind is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"{where} must be an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError(f"{where} must be an integer, got {value!r}") from None
    if kind is float:
        if isinstance(value, bool):
            raise ValueError(f"{where} must be a number, got {value!r}")
        try:
            number = float(value)  # also "1e-4", which YAML reads as a string
        except (TypeError, ValueError):
            raise ValueError(f"{where} must be a number, got {value!r}") from None
        if not math.isfinite(number):  # no setting means anything at inf or nan
            raise ValueError(f"{where} must be a finite number, got {value!r}")
        return number
    if kind is str:
        if isinstance(value, (dict, list)):
            raise ValueError(f"{where} must be a string, got {value!r}")
        return str(value)
    raise TypeError(f"unsupported config field type {kind} for {where}")


def add_config_arguments(parser: argparse.ArgumentParser, cls) -> None:
    """`--config FILE.yaml` plus one flag per field of `cls`."""
    names = recipe_names(cls)
    recipes = (f", or a recipe shipped with mae by name: {', '.join(names)}" if names
               else "; no shipped recipes for this command")
    parser.add_argument(
        "--config", metavar="FILE.yaml",
        help=f"read settings from a YAML file (keys are the flag names with underscores){recipes}; flags on "
        "the command line override it",
    )
    for field in dataclasses.fields(cls):
        base, optional = _field_type(cls, field.name)
        default = field.default
        shown = list(default) if isinstance(default, tuple) else default
        help_text = field.metadata.get("help", "").replace(
            "{resumable}", ", ".join(map(flag, may_change_on_resume(cls))))
        if default is not None:  # a None default is explained by the help text itself
            chosen = field.metadata.get("default_from")
            help_text += f" (default: {shown} on this machine: {chosen})" if chosen else f" (default: {shown})"
        kwargs = dict(dest=field.name, default=argparse.SUPPRESS, help=help_text)
        if field.metadata.get("repeatable"):  # `--compare a --compare b` and `--compare a b` alike
            kwargs.update(action="extend", nargs="+", metavar=field.metadata.get("metavar", "VALUE"))
        elif base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif base == Size:
            kwargs["action"] = SizeArgument
        elif typing.get_origin(base) is tuple and typing.get_args(base)[1:] == (Ellipsis,):
            kwargs.update(nargs="*", metavar=field.metadata.get("metavar", field.name.upper().rstrip("S")))
        elif typing.get_origin(base) is tuple:
            count = len(typing.get_args(base))
            kwargs.update(nargs=count, metavar=field.metadata.get("metavar", (field.name.upper(),) * count))
        elif "metavar" in field.metadata:
            kwargs["metavar"] = field.metadata["metavar"]
        elif field.metadata.get("choices"):  # checked by `coerce`, with the field's name
            kwargs["metavar"] = "{" + ",".join(map(str, field.metadata["choices"])) + "}"
        else:
            kwargs["metavar"] = base.__name__.upper()
        parser.add_argument(flag(field.name), *field.metadata.get("aliases", ()), **kwargs)


def find_config(name: str | Path, prefix: str | None = None) -> Path:
    """A YAML file, or a recipe shipped with mae by name: `vit_base_800ep` -> pretrain_vit_base_800ep.yaml."""
    path = Path(name)
    if path.is_file() or path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        return path
    for candidate in ([f"{prefix}_{name}.yaml"] if prefix else []) + [f"{name}.yaml"]:
        if (CONFIG_DIR / candidate).is_file():
            return CONFIG_DIR / candidate
    names = sorted(p.stem.removeprefix(f"{prefix}_") for p in CONFIG_DIR.glob(f"{prefix or ''}*.yaml"))
    raise FileNotFoundError(f"config file {path} does not exist, nor a recipe of that name in {CONFIG_DIR}"
                            + (f" (recipes: {', '.join(names)})" if names else ""))


def recipe_names(cls) -> list[str]:
    """The recipes shipped for `cls`'s command, by the names `--config NAME` takes: NAME of
    configs/PREFIX_NAME.yaml (PREFIX its RECIPE_PREFIX) and of a one-word configs/NAME.yaml (demo.yaml),
    where every setting of the file is one of `cls`'s."""
    prefix = getattr(cls, "RECIPE_PREFIX", None)
    fields = {f.name for f in dataclasses.fields(cls)}
    names = set()
    for path in CONFIG_DIR.glob("*.yaml"):
        name = path.stem.removeprefix(f"{prefix}_") if prefix else path.stem
        if (name != path.stem or "_" not in name) and set(_recipe_keys(path)) <= fields:
            names.add(name)
    return sorted(names)


@functools.cache
def _recipe_keys(path: Path) -> tuple[str, ...]:
    return tuple(read_yaml(path))


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as err:
        raise ValueError(f"config file {path} is not UTF-8 text (byte {err.object[err.start]:#04x} at "
                         f"offset {err.start}); save it as UTF-8") from None
    except yaml.YAMLError as err:
        raise ValueError(f"config file {path} is not valid YAML: {err}") from None
    if not isinstance(values, dict):
        raise ValueError(f"config file {path} must hold a mapping of settings, got {type(values).__name__}")
    return values


def checked_values(cls, values: dict, source: str) -> dict:
    """Name unknown keys (with a suggestion) and coerce every value to its field's type."""
    names = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in names:
            close = difflib.get_close_matches(str(key).replace("-", "_"), names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"{source}: unknown setting {key!r}{hint}")
    return {k: coerce(cls, k, v, source) for k, v in values.items()}


def make_config(cls, values: dict, source: str = "config"):
    return cls(**checked_values(cls, values, source))


def config_from_args(cls, args: argparse.Namespace):
    """Defaults, then the YAML file from --config, then the flags that were given."""
    values = {}
    if getattr(args, "config", None):
        path = find_config(args.config, getattr(cls, "RECIPE_PREFIX", None))
        values = checked_values(cls, read_yaml(path), str(path))
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    values.update(checked_values(cls, given, "command line"))
    return cls(**values)


def config_to_dict(config) -> dict:
    return {
        k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()
    }


def save_config(config, path: str | Path, comment: str | None = None) -> None:
    """Write the config as YAML (atomically); `comment` lines go on top, prefixed with #."""
    text = yaml.safe_dump(config_to_dict(config), sort_keys=False)
    if comment:
        text = "".join(f"# {line}\n" for line in comment.splitlines()) + text
    write_text_atomic(path, text)


def load_config(cls, path: str | Path):
    return make_config(cls, read_yaml(path), str(path))


MAX_SEED = 2**63 - 1  # torch.manual_seed's limit


def check_seed(seed, name: str = "--seed") -> None:
    """Seeds are integers in [0, 2**63 - 1], checked before anything is read or written."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"{name} must be an integer in [0, 2**63 - 1], got {seed!r}")
