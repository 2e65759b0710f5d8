"""The package's floors, read from its import statements: imports only run downward, no two
modules import each other (directly or round a loop), and no module takes another's private
names. docs/design.md draws the same floors."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mae"

# Top to bottom; a module may import its own room and any room below its floor.
FLOORS = [
    ["mae", "mae.__main__", "mae.cli", "mae.commands"],
    ["mae.benchmarking"],
    ["mae.engine"],
    ["mae.engine.loops"],
    ["mae.engine.run"],
    ["mae.engine.config"],
    ["mae.engine.optim", "mae.engine.compute", "mae.engine.eval"],
    ["mae.viz", "mae.robustness"],
    ["mae.weights"],
    ["mae.data", "mae.models"],
    ["mae.storage"],
    ["mae.util"],
]
FACES = {"mae", "mae.engine"}  # packages whose __init__ hands names on from the rooms below it
# Modules that must answer `--help` and build configs without loading torch.
NO_TORCH_AT_IMPORT = ["mae", "mae.cli", "mae.engine", "mae.data", "mae.models"] + [
    f"mae.engine.config.{name}" for name in ("base", "pretrain", "classifier", "segment", "from_data")] + [
    f"mae.commands.{name}" for name in ("pretrain", "finetune", "linprobe", "evaluate", "corrupt", "segment",
                                        "visualize", "convert", "shards", "ablate", "bench")] + [
    "mae.engine.config.ablate", "mae.engine.config.bench"]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(name: str, path: Path, known: dict) -> list[tuple[str, str, bool]]:
    """(imported module, name taken from it or "", at module level?) for each mae import."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target != "mae" and not target.startswith("mae."):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((sub, "", id(node) in top_level) if sub in known
                             else (target, alias.name, id(node) in top_level))
        elif isinstance(node, ast.Import):
            found += [(a.name, "", id(node) in top_level) for a in node.names if a.name.startswith("mae")]
    return found


def floor(name: str) -> tuple[int, str]:
    best = None
    for level, rooms in enumerate(FLOORS):
        for room in rooms:
            inside = name == room or (room not in FACES and name.startswith(room + "."))
            if inside and (best is None or len(room) > len(best[1])):
                best = (level, room)
    assert best is not None, f"{name} is on no floor: add its room to FLOORS (and to docs/design.md)"
    return best


def test_every_import_runs_down_or_stays_in_its_room():
    known = modules()
    upward = []
    for name, path in known.items():
        level, room = floor(name)
        for target, _, _ in imports(name, path, known):
            target_level, target_room = floor(target)
            if target_room != room and target_level <= level and level > 0:
                upward.append(f"{name} ({room}) -> {target} ({target_room})")
    assert not upward, "imports that do not run downward:\n" + "\n".join(sorted(upward))


def test_no_import_circle():
    known = modules()
    graph = {name: {t for t, _, _ in imports(name, path, known) if t in known and t != name}
             for name, path in known.items()}
    state, circles = {}, []

    def visit(node, trail):
        state[node] = "open"
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                circles.append(" -> ".join(trail[trail.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node, [node])
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_no_module_takes_another_modules_private_names():
    known = modules()
    private = [f"{name} takes {taken} from {target}" for name, path in known.items()
               for target, taken, _ in imports(name, path, known)
               if taken.startswith("_") and not taken.startswith("__") and target != name]
    assert not private, "\n".join(private)


def test_the_command_line_and_configs_load_without_torch():
    import subprocess
    import sys

    code = ("import sys\n" + "".join(f"import {m}\n" for m in NO_TORCH_AT_IMPORT) +
            "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
            "print(len(loaded))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0", f"importing {NO_TORCH_AT_IMPORT} loads torch"


def test_no_test_waits_on_a_child_process_without_a_timeout():
    """On a loaded machine a hung child must fail its test, not stall the suite."""
    waits = {"communicate", "wait"}
    runs = {"run", "check_output", "check_call", "call"}
    untimed = []
    for path in sorted(Path(__file__).parent.rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            name, owner = node.func.attr, ast.unparse(node.func.value)
            if (name in waits or (name in runs and owner == "subprocess")) and not any(
                    k.arg == "timeout" for k in node.keywords):
                untimed.append(f"{path.name}:{node.lineno}: {ast.unparse(node)[:80]}")
    assert not untimed, "waits without a timeout:\n" + "\n".join(untimed)


def test_every_help_answers_without_torch():
    import subprocess
    import sys

    from mae.cli import COMMANDS

    code = ("import sys\nfrom mae.cli import main\n"
            "for argv in [['--help']] + [[name, '--help'] for name in sys.argv[1:]]:\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print('torch' in sys.modules, file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code, *COMMANDS], capture_output=True, text=True, timeout=120)
    assert out.stderr.strip().splitlines()[-1] == "False", out.stderr[-2000:]
    assert all(f"usage: mae {name}" in out.stdout for name in COMMANDS)
