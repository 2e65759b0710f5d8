"""A package face that imports its modules on first use, so that `import mae`, the config
classes and `mae --help` do not load torch until a name that needs it is asked for.

    __getattr__, __dir__ = lazy_exports(__name__, {"create_model": ".models.zoo", ...})
"""

import importlib
import sys


def lazy_exports(package: str, exports: dict[str, str]):
    """Module-level (__getattr__, __dir__) for `package`, whose names `exports` maps to the
    module (relative to the package) that defines each."""

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name], package), name)
        setattr(sys.modules[package], name, value)  # later look-ups find it without this hook
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
