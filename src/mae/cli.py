"""The `mae` command line: one subcommand per module in `mae.commands`.

Each command module defines `HELP` (one line), `add_arguments(parser)` and `run(args)`;
modules are imported only when their command is used, so `mae --help` stays fast.
"""

import argparse
import difflib
import importlib
import importlib.util
import sys

from . import __version__

COMMANDS = {
    "pretrain": "mae.commands.pretrain",
    "finetune": "mae.commands.finetune",
    "linprobe": "mae.commands.linprobe",
    "eval": "mae.commands.evaluate",
    "corrupt": "mae.commands.corrupt",
    "segment": "mae.commands.segment",
    "visualize": "mae.commands.visualize",
    "convert": "mae.commands.convert",
    "shards": "mae.commands.shards",
    "bench": "mae.commands.bench",
    "ablate": "mae.commands.ablate",
}


def available_commands() -> dict:
    found = {}
    for name, module in COMMANDS.items():
        if importlib.util.find_spec(module) is not None:
            found[name] = module
    return found


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """One --help style for every command: examples as written, "(default: X)" after each flag
    that has one, and metavars named by type (INT, FLOAT, STR) unless a flag names its own."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default not in (None, argparse.SUPPRESS) and "(default" not in text and action.option_strings:
            text += " (default: %(default)s)"
        return text

    def _format_args(self, action, default_metavar):
        if action.nargs == "+" and isinstance(action.metavar, tuple):  # one value per name, the first needed
            first, *rest = action.metavar
            return " ".join([first, *(f"[{name}]" for name in rest)])
        return super()._format_args(action, default_metavar)

    def _get_default_metavar_for_optional(self, action):
        return {int: "INT", float: "FLOAT"}.get(action.type, "STR")


def build_parser(commands: dict) -> argparse.ArgumentParser:
    # no abbreviations: `--epoch 2` is an unknown flag rather than --epochs, here and in each command
    parser = argparse.ArgumentParser(
        prog="mae", description="Masked-autoencoder pretraining of Vision Transformers.", allow_abbrev=False
    )
    parser.add_argument("--version", action="version", version=f"mae {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in commands.items():
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP, formatter_class=HelpFormatter,
                             allow_abbrev=False)  # a subcommand's parser does not inherit it
        module.add_arguments(cmd)
        cmd.formatter_class = HelpFormatter  # also where a command set its own
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    commands = available_commands()
    # only import the command that runs (and all of them for the top-level --help)
    if argv and argv[0] in commands:
        commands = {argv[0]: commands[argv[0]]}
    parser = build_parser(commands)
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # named by the command, without its usage (pretrain's is 30 lines)
        subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        command = subcommands.choices[args.command]
        lines = unknown_argument_errors(command, unknown)
        command.exit(2, "".join(f"{command.prog}: error: {line}\n" for line in lines))
    args._argv = argv  # the command line, for advice to run it again
    try:
        return args._run(args) or 0
    except (ValueError, FileNotFoundError) as err:
        print(f"mae {args.command}: error: {error_message(err)}", file=sys.stderr)
        return 2


def unknown_argument_errors(parser: argparse.ArgumentParser, unknown: list[str]) -> list[str]:
    """One line per unknown flag, with the flags it abbreviates or else the closest ones; without an
    unknown flag, one line naming the stray values."""
    flags = [word.split("=", 1)[0] for word in unknown if _is_flag(word)]
    if not flags:
        return [f"unexpected argument{'s' if len(unknown) > 1 else ''} {' '.join(unknown)} (see {parser.prog} --help)"]
    lines = []
    for name in flags:
        known = list(parser._option_string_actions)
        close = [f for f in known if f.startswith(name)][:3] or difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {' or '.join(close)}?" if close else f" (see {parser.prog} --help)"
        lines.append(f"unknown flag {name}{hint}")
    return lines


def _is_flag(word: str) -> bool:
    """`--x`, `-x` or `--x=1`, not a negative number (which argparse takes for a value)."""
    if not word.startswith("-") or word == "-":
        return False
    try:
        float(word)
    except ValueError:
        return True
    return False


def error_message(err: Exception) -> str:
    """The error's own message; one raised in a data loader worker comes back from torch with the
    worker's traceback in it, which is left out."""
    message = str(err)
    if "\nOriginal Traceback" in message:
        message = message.rsplit(f"\n{type(err).__name__}: ", 1)[-1].strip()
    return message


if __name__ == "__main__":
    sys.exit(main())
