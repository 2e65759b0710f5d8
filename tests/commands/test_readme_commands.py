"""Every shell command of README.md, docs/*.md and the commands' --help examples names a real
subcommand and real flags: parsed by the real `mae` parser, `make` targets found in the
Makefile, `python benchmarks/X.py` scripts found with each flag they are given, and every
`--config configs/...` file readable as that command's config."""

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from helpers import config_class
from mae.cli import available_commands, build_parser
from mae.engine.config.base import checked_values, find_config, read_yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PARSER = build_parser(available_commands())
SUBPARSERS = next(a for a in PARSER._actions if a.dest == "command").choices


def shell_lines(text: str) -> list[str]:
    """Lines of the indented and fenced (non-Python) code blocks, continuations joined."""
    lines, fenced, fence_lang, previous_blank = [], False, "", True
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("```"):
            fenced, fence_lang = not fenced, stripped[3:].strip()
            continue
        if fenced and fence_lang in ("", "sh", "bash", "shell", "console"):
            lines.append(stripped.removeprefix("$ "))
        elif not fenced and raw.startswith("    ") and (previous_blank or lines):
            lines.append(stripped)
        elif not fenced and stripped:
            lines.append(None)  # prose ends an indented block
        previous_blank = not stripped
    joined, pending = [], ""
    for line in lines:
        if line is None:
            pending = ""
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        joined.append(pending + line)
        pending = ""
    return joined


def doc_commands() -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        for line in shell_lines(path.read_text()):
            found.append((path.relative_to(ROOT).as_posix(), line))
    for name, parser in SUBPARSERS.items():
        for line in help_examples(parser):
            found.append((f"mae {name} --help", line))
    return [(where, line) for where, line in found if _is_command(_words(line))]


def help_examples(parser) -> list[str]:
    """The example lines of a command's --help epilog: its indented lines (by two spaces under
    `examples:`, or by four), continuations joined."""
    text = (parser.epilog or "").replace("examples:", "")
    lines = ("    " + line.strip() if line.startswith("  ") else line for line in text.splitlines())
    return shell_lines("\n".join(lines))


def _is_command(words: list[str]) -> bool:
    return bool(words) and (mae_argv(words) is not None or words[0] in ("make", "python", "python3"))


def _words(line: str) -> list[str]:
    try:
        return shlex.split(line, comments=True)
    except ValueError:
        return line.split()


def mae_argv(words: list[str]) -> list[str] | None:
    """The arguments after `mae` (also `.venv/bin/mae`, `python -m mae.cli`, torchrun ...)."""
    for i, word in enumerate(words):
        if i == 0 and (word == "mae" or word.endswith("/bin/mae")):
            return words[1:]
        if word == "-m" and i + 1 < len(words) and words[i + 1] == "mae.cli":
            return words[i + 2:]
    return None


def is_synopsis(argv: list[str]) -> bool:
    """A usage line with placeholders (`[--flag]`, `{a,b}`, `...`, `SRC DST`) rather than a command."""
    return any(w.startswith(("[", "{")) or w == "..." or re.fullmatch(r"[A-Z][A-Z_]+", w) for w in argv)


COMMANDS = doc_commands()


def test_the_docs_have_commands_to_check():
    mae_lines = [line for _, line in COMMANDS if mae_argv(_words(line))]
    assert len(mae_lines) >= 10, COMMANDS


@pytest.mark.parametrize("where,line", COMMANDS, ids=[f"{where}: {line[:60]}" for where, line in COMMANDS])
def test_command_as_written(where, line):
    words = _words(line)
    argv = mae_argv(words)
    if argv is not None:
        _check_mae(where, line, argv)
    elif words[0] == "make":
        targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
        for target in words[1:]:
            assert target in targets, f"{where}: `{line}`: no make target {target!r}"
    elif words[0] in ("python", "python3") and words[1].endswith(".py"):
        script = ROOT / words[1]
        assert script.is_file(), f"{where}: `{line}`: no script {words[1]}"
        source = script.read_text()
        for flag in (w.split("=")[0] for w in words[2:] if w.startswith("--")):
            assert f'"{flag}"' in source, f"{where}: `{line}`: {words[1]} has no flag {flag}"


def _check_mae(where: str, line: str, argv: list[str]) -> None:
    assert argv and argv[0] in SUBPARSERS, f"{where}: `{line}`: no subcommand {argv[:1]}"
    sub = SUBPARSERS[argv[0]]
    for word in argv[1:]:
        flag = word.strip("[]").split("=")[0]
        if flag.startswith("--"):
            assert flag in sub._option_string_actions, f"{where}: `{line}`: `mae {argv[0]}` has no flag {flag}"
    if is_synopsis(argv):
        return
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            args = PARSER.parse_args(argv)
        except SystemExit:
            pytest.fail(f"{where}: `{line}` does not parse:\n{err.getvalue()}")
    config = getattr(args, "config", None)
    if config and config.startswith("configs/"):
        checked_values(config_class(argv[0]), read_yaml(ROOT / config), config)  # keys and types of that command
    elif config and "/" not in config and not config.endswith((".yaml", ".yml")):  # a recipe by name
        cls = config_class(argv[0])
        path = find_config(config, getattr(cls, "RECIPE_PREFIX", None))
        checked_values(cls, read_yaml(path), config)


@pytest.mark.parametrize("command", sorted(SUBPARSERS))
def test_every_help_example_is_checked_as_a_command(command):
    checked = [line for where, line in COMMANDS if where == f"mae {command} --help"]
    for line in checked:  # a command to run, not a usage line that only its flags are checked in
        assert not is_synopsis(mae_argv(_words(line)) or []), f"mae {command} --help: `{line}` is not a command"
    for raw in (SUBPARSERS[command].epilog or "").splitlines():
        if raw.strip().startswith("mae "):
            written = raw.strip().removesuffix("\\").rstrip()
            assert any(line.startswith(written) for line in checked), f"mae {command} --help: `{written}` unchecked"


def test_shell_lines_join_continuations_and_skip_prose():
    text = "Some prose\n\n    mae pretrain --data x \\\n        --epochs 2   # note\n\nmore prose\n"
    assert shell_lines(text) == ["mae pretrain --data x --epochs 2   # note"]
    assert mae_argv(_words(shell_lines(text)[0])) == ["pretrain", "--data", "x", "--epochs", "2"]


def test_a_wrong_flag_in_the_docs_is_caught():
    with pytest.raises(AssertionError, match="has no flag --batchsize"):
        _check_mae("README.md", "mae pretrain --batchsize 4", ["pretrain", "--batchsize", "4"])
    with pytest.raises(BaseException, match="does not parse"):
        _check_mae("README.md", "mae pretrain --epochs", ["pretrain", "--epochs"])
