"""Checkpoints on the Hugging Face Hub, by id: `facebook/vit-mae-base`, `hf://facebook/vit-mae-base`,
`hf://facebook/vit-mae-base@REVISION`.

Read through `huggingface_hub` (the optional extra: `pip install -e '.[hub]'`), so its cache
(`HF_HUB_CACHE`, `HF_HOME`) and offline mode (`HF_HUB_OFFLINE=1`: the cache only) apply as
everywhere else. Only config.json and the weights are fetched. A bare `owner/name` is a Hub
id only when no such local path exists and `owner` is not a local folder (so a mistyped
`runs/dmeo` is reported as a missing path, never looked up on the Hub).
"""

import os
from pathlib import Path

PREFIX = "hf://"
FILES = ["config.json", "*.safetensors", "pytorch_model.bin"]


def hub_id(src) -> tuple[str, str | None] | None:
    """(repo id, revision) when `src` names a Hub model rather than a local path, else None."""
    if not isinstance(src, (str, os.PathLike)):
        return None
    text = os.fspath(src)
    if text.startswith(PREFIX):
        text = text[len(PREFIX):]
    elif Path(text).exists() or text.startswith((".", "/", "~")):
        return None
    repo, _, revision = text.partition("@")
    parts = repo.split("/")
    if len(parts) != 2 or not all(parts) or (not os.fspath(src).startswith(PREFIX) and Path(parts[0]).exists()):
        return None
    return repo, revision or None


def local_path(src):
    """`src` itself, or for a Hub id the local snapshot folder (downloaded into the cache if needed)."""
    found = hub_id(src)
    if found is None:
        return src
    repo, revision = found
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    except ImportError:
        raise ValueError(f"{src} looks like a Hugging Face Hub id, which needs the huggingface_hub package "
                         "(pip install huggingface_hub, or the project's [hub] extra); no such local path "
                         "exists either") from None
    try:
        return Path(snapshot_download(repo, revision=revision, allow_patterns=FILES))
    except LocalEntryNotFoundError:
        raise ValueError(f"Hugging Face Hub model {repo} is not in the cache ({_cache()}) and cannot be "
                         "downloaded (offline: HF_HUB_OFFLINE, or no connection); download it once online, "
                         "or give a local folder") from None
    except (HfHubHTTPError, OSError) as err:
        raise ValueError(f"cannot fetch Hugging Face Hub model {repo}: {err}") from None


def _cache() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)
