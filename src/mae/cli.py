"""The `mae` command line: one subcommand per module in `mae.commands`.

Each command module defines `HELP` (one line), `add_arguments(parser)` and `run(args)`;
modules are imported only when their command is used, so `mae --help` stays fast.
"""

import argparse
import importlib
import sys

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


def build_parser(commands: dict) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mae", description="Masked-autoencoder pretraining of Vision Transformers."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in commands.items():
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    commands = available_commands()
    # only import the command that runs (and all of them for the top-level --help)
    if argv and argv[0] in commands:
        commands = {argv[0]: commands[argv[0]]}
    args = build_parser(commands).parse_args(argv)
    try:
        return args._run(args) or 0
    except (ValueError, FileNotFoundError) as err:
        print(f"mae {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
