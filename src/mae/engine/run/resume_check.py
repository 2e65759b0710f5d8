"""A resume continues the same run: the same settings (bar those that may change by design)
and the same data.

Each checkpoint keeps the run's settings (`config`) and the identity of its data (`data`:
where it is, how many images, a digest of the list of image names). A resume whose
settings or data differ is refused, naming each difference as old -> new. The settings that
may differ are the fields each config marks `resumable` (`may_change_on_resume`): where the run is written, how it
is logged and saved, how work is split over devices and workers, and the number of epochs
(a finished run may be extended).
"""

import dataclasses
import hashlib
import os
from pathlib import Path

from ...data import SYNTHETIC
from ..config.base import config_to_dict, flag, may_change_on_resume


def data_identity(data: str | None, *sources) -> dict:
    """{"source": resolved path or "synthetic", "images": count, "digest": of the image names}.

    Names are taken relative to the data's folder, so the same data reached by another
    path (relative from elsewhere, absolute) has the same digest."""
    synthetic = data in (None, SYNTHETIC)
    root = Path(data).expanduser() if not synthetic else Path(".")
    base = root if root.is_dir() else root.parent
    digest = hashlib.sha256()
    for source in sources:
        for i in range(len(source)):
            name = source.name(i)
            relative = name if synthetic else os.path.relpath(name, base)
            digest.update(relative.encode("utf-8", "surrogateescape") + b"\n")
    return {"source": SYNTHETIC if synthetic else str(root.resolve()),
            "images": sum(len(s) for s in sources), "digest": digest.hexdigest()[:16]}


def _shown(value) -> str:
    """As the flag takes it: `none`, `0.9 0.95` for a list."""
    if isinstance(value, list):
        return " ".join(map(str, value))
    return "none" if value is None else str(value)


def differences(saved_config: dict, saved_data: dict | None, config, data: dict) -> list[str]:
    """'--name old -> new' for each setting that differs and may not, then the data's."""
    allowed = set(may_change_on_resume(type(config))) | {"data"}  # the data: by identity, below
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    found = []
    for name, new in config_to_dict(config).items():
        old = saved_config.get(name, defaults[name])  # a setting newer than the checkpoint: its default
        old = list(old) if isinstance(old, tuple) else old
        if name not in allowed and old != new:
            found.append(f"{flag(name)} {_shown(old)} -> {_shown(new)}")
    for key, what in (("source", "data"), ("images", "data images"), ("digest", "data file-list digest")):
        if saved_data is not None and saved_data.get(key) != data[key]:
            found.append(f"{what} {saved_data.get(key)} -> {data[key]}")
    return found


def check_same_run(checkpoint: Path, state: dict, config, data: dict) -> None:
    found = differences(state.get("config", {}), state.get("data"), config, data)
    if found:
        allowed = ", ".join(flag(n) for n in may_change_on_resume(type(config)))
        raise ValueError(
            f"cannot resume from {checkpoint}: this run differs from the one that wrote it: "
            f"{'; '.join(found)}. Resume with the run's own settings (its config.yaml) and data, or "
            f"start a new run in another --output-dir. Settings that may change on resume: {allowed}"
        )
