"""Every subcommand's --help and errors look alike: defaults and metavars shown the same way,
no abbreviated flags, an unknown flag named in one line with the closest ones, `mae --version`."""

import argparse
import re
import subprocess
import sys

import pytest

from helpers import config_class
from mae import __version__, cli
from mae.engine.config.base import CONFIG_DIR, checked_values, find_config, read_yaml

PARSER = cli.build_parser(cli.available_commands())
SUBPARSERS = next(a for a in PARSER._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"mae {__version__}"


def test_python_dash_m_mae_is_the_mae_command():
    done = subprocess.run([sys.executable, "-m", "mae", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"mae {__version__}", done.stderr


@pytest.mark.parametrize("command", sorted(SUBPARSERS))
def test_an_unknown_flag_is_one_line_naming_the_command(command, capsys):
    argv = [command, "--no-such-flag"]
    for action in SUBPARSERS[command]._actions:  # what the command requires, so that only the flag is wrong
        value = str(next(iter(action.choices))) if action.choices else "x"
        if not action.option_strings:
            argv.append(value)
        elif action.required:
            argv += [action.option_strings[0], value]
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert err.startswith(f"mae {command}: error: unknown flag --no-such-flag") and err.count("\n") == 1, err


def test_no_parser_takes_abbreviations():
    assert PARSER.allow_abbrev is False
    for command, parser in SUBPARSERS.items():
        assert parser.allow_abbrev is False, command


@pytest.mark.parametrize("argv,message", [
    (["--epoch", "2"], "unknown flag --epoch; did you mean --epochs?"),  # an abbreviation
    (["--mask-ration", "0.5"], "unknown flag --mask-ration; did you mean --mask-ratio"),
    (["--epochs", "2", "--mask-ration=0.5"], "unknown flag --mask-ration; did you mean --mask-ratio"),
    (["--epochs", "2", "stray"], "unexpected argument stray (see mae pretrain --help)"),
    (["-1"], "unexpected argument -1"),
])
def test_a_wrong_argument_is_named_without_the_usage(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as stop:  # data that does not exist: no training, were the flags taken
        cli.main(["pretrain", "--data", str(tmp_path / "missing"), *argv])
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert err.startswith(f"mae pretrain: error: {message}") and "usage:" not in err, err


def test_boolean_and_many_valued_flags_still_parse_in_full():
    args = PARSER.parse_args(["pretrain", "--no-norm-pix-loss", "--img-size", "32", "48", "--mask-ratio=0.5"])
    assert args.norm_pix_loss is False and args.img_size == ["32", "48"] and args.mask_ratio == "0.5"


@pytest.mark.parametrize("command", sorted(SUBPARSERS))
def test_help_shows_every_default_and_metavar_alike(command):
    parser = SUBPARSERS[command]
    text = parser.format_help()
    for action in parser._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        name = action.option_strings[0]
        assert action.help, f"mae {command} {name} has no help"
        shown = parser._get_formatter()._get_help_string(action)
        has_default = action.default not in (None, argparse.SUPPRESS)
        assert not has_default or "(default" in shown, f"mae {command} {name}: default not shown"
        metavar = action.metavar
        if isinstance(metavar, tuple):
            assert len(set(metavar)) == len(metavar), f"mae {command} {name}: metavars {metavar}"
        if action.nargs != 0:
            formatter = parser._get_formatter()
            shown_metavar = formatter._format_args(action, formatter._get_default_metavar_for_optional(action))
            assert re.fullmatch(r"[A-Z0-9_.\[\]{}, |a-z-]+", shown_metavar), shown_metavar
            assert not re.search(r"\b[A-Z]+_[A-Z_]+\b", shown_metavar), f"mae {command} {name}: {shown_metavar}"
    assert "usage: mae " + command in text


@pytest.mark.parametrize("command", sorted(SUBPARSERS))
def test_help_states_each_default_once(command):
    parser = SUBPARSERS[command]
    formatter = parser._get_formatter()
    for action in parser._actions:
        if action.option_strings and action.help:
            shown = formatter._expand_help(action)
            assert shown.lower().count("default") <= 1, f"mae {command} {action.option_strings[0]}: {shown}"


def test_a_default_chosen_per_machine_says_how():
    parser = SUBPARSERS["pretrain"]
    shown = parser._get_formatter()._expand_help(parser._option_string_actions["--num-workers"])
    assert shown.endswith("on this machine: the cores this process may use, less one, at most 8)"), shown


def test_every_command_is_described_alike():
    for command, parser in SUBPARSERS.items():
        text = parser.description
        assert text[0].islower() and not text.endswith("."), f"mae {command}: {text!r}"
    assert SUBPARSERS["bench"].epilog.startswith("examples:\n  mae bench ")


def recipes_in_help(command: str) -> list[str]:
    text = SUBPARSERS[command]._option_string_actions["--config"].help
    named = re.search(r"by name: ([\w, ]+);", text)
    assert named or "no shipped recipes" in text, f"mae {command} --config: {text}"
    return named.group(1).split(", ") if named else []


CONFIG_COMMANDS = sorted(c for c, parser in SUBPARSERS.items() if "--config" in parser._option_string_actions)


@pytest.mark.parametrize("command", CONFIG_COMMANDS)
def test_the_config_help_names_the_recipes_of_that_command(command):
    cls = config_class(command)
    for name in recipes_in_help(command):
        path = find_config(name, getattr(cls, "RECIPE_PREFIX", None))
        checked_values(cls, read_yaml(path), f"mae {command} --config {name}")  # that command's settings


def test_each_command_with_recipes_names_its_own():
    found = {command: recipes_in_help(command) for command in CONFIG_COMMANDS}
    assert found["eval"] == []
    assert "vit_base_800ep" in found["pretrain"] and "vit_base_800ep" not in found["finetune"]
    for command in ("pretrain", "finetune", "linprobe", "segment", "ablate"):
        assert "demo" in found[command], command
    paths = [find_config(name, getattr(config_class(c), "RECIPE_PREFIX", None)) for c in found for name in found[c]]
    assert len(paths) == len(set(paths)) and set(paths) <= set(CONFIG_DIR.glob("*.yaml"))  # each under one command


def test_the_batch_flag_has_one_name_everywhere():
    for command in ("pretrain", "finetune", "linprobe", "eval", "bench"):
        assert "--batch-size" in SUBPARSERS[command]._option_string_actions, command
