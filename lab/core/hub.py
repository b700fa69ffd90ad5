"""Where a model's files are and which library reads them, without importing torch: a local folder
or an "hf-hub:org/repo" id, found complete in the Hugging Face cache or downloaded (one copy of the
weights), and on a machine without a network a fast, precise failure instead of the hub's retries.

    folder = resolve_folder("hf-hub:google/siglip-base-patch16-224")   # the snapshot on disk
    folder_format(folder)        # "open_clip" (open_clip_config.json) or "transformers" (config.json)
    transformers_type(folder)    # "clip", "siglip", "metaclip_2"; siglip2 (NaFlex) is refused, saying why
    cached_transformers_models() # ["hf-hub:org/repo", ...] complete in the Hugging Face cache

A repo is decided by its files: `open_clip_config.json` -> open_clip; `config.json` with a
`model_type` of `clip` (also MetaCLIP v1), `siglip` (SigLIP and the fixed-resolution SigLIP 2
checkpoints) or `metaclip_2` -> transformers.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from ..errors import ModelNotAvailable

__all__ = ["TRANSFORMERS_TYPES", "WEIGHT_FILES", "HUB_PREFIX", "offline", "folder_format", "transformers_type",
           "resolve_folder", "offline_fetch_error", "require_hub_files", "weights_file", "folder_files_digest",
           "cached_transformers_models"]

HUB_PREFIX = "hf-hub:"
TRANSFORMERS_TYPES = {"clip": "CLIP / MetaCLIP", "siglip": "SigLIP / fixed-resolution SigLIP 2",
                      "metaclip_2": "MetaCLIP 2"}  # model_type -> what it is; each is read by lab.core._hf
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # transformers' names, in the order it prefers them
_OPEN_CLIP_CONFIG = "open_clip_config.json"
_OPEN_CLIP_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
_PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "spiece.model", "tokenizer.model",
                    "sentencepiece.bpe.model")
# what else decides a transformers checkpoint's embeddings: its config, processor and tokenizer
_CONFIG_FILES = ("config.json", *_PROCESSOR_FILES, *_TOKENIZER_FILES, "special_tokens_map.json", "merges.txt",
                 "added_tokens.json")
_REFUSED = {
    "siglip2": "is a SigLIP 2 NaFlex checkpoint (variable patch grids that keep each image's aspect ratio, "
               "fed as patch sequences with their own masks), which the lab's fixed-size image pipeline does not "
               "reproduce. Use a fixed-resolution SigLIP 2 checkpoint instead (model_type 'siglip', e.g. "
               "google/siglip2-base-patch16-224), or transformers' Siglip2Model directly.",
}
_TRUE = ("1", "true", "yes", "on")


def offline(host: str = "huggingface.co") -> bool:
    """No network for the hub: HF_HUB_OFFLINE (or its alias TRANSFORMERS_OFFLINE) is set, or the hub's
    host does not resolve."""
    if any(os.environ.get(v, "").strip().lower() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        return True
    host = urlparse(os.environ.get("HF_ENDPOINT", f"https://{host}")).hostname or host
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return True
    return False


def folder_format(folder: str | os.PathLike) -> str | None:
    """"open_clip", "transformers" or None (neither config file) for a model folder."""
    folder = Path(folder)
    if (folder / _OPEN_CLIP_CONFIG).is_file():
        return "open_clip"
    if (folder / "config.json").is_file():
        return "transformers"
    return None


def transformers_type(folder: str | os.PathLike) -> str:
    """The folder's config.json `model_type`, when the lab reads it; else ModelNotAvailable saying why."""
    path = Path(folder) / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ModelNotAvailable(f"{path}: not a readable transformers config ({e})") from None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type in _REFUSED:
        raise ModelNotAvailable(f"{folder} {_REFUSED[model_type]}")
    if model_type not in TRANSFORMERS_TYPES:
        raise ModelNotAvailable(
            f"{folder} holds a transformers {model_type!r} model; the lab reads "
            f"{', '.join(f'{k} ({v})' for k, v in TRANSFORMERS_TYPES.items())} checkpoints and open_clip folders "
            f"({_OPEN_CLIP_CONFIG}).")
    return model_type


def weights_file(folder: str | os.PathLike) -> Path:
    """The folder's one weights file (safetensors preferred), or ModelNotAvailable saying what is expected."""
    for name in WEIGHT_FILES:
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    raise ModelNotAvailable(f"{folder} has no weights: expected one of {list(WEIGHT_FILES)} (a sharded checkpoint: "
                            "save it as one file with save_pretrained(folder, max_shard_size='100GB')).")


def folder_files_digest(folder: str | os.PathLike) -> str:
    """sha256 over a transformers folder's config, processor and tokenizer files (the weights are hashed apart)."""
    h = hashlib.sha256()
    for name in _CONFIG_FILES:
        if (Path(folder) / name).is_file():
            h.update(name.encode() + b"\0" + (Path(folder) / name).read_bytes())
    return h.hexdigest()


def _hub_cache(cache_dir: str | None) -> Path:
    """The Hugging Face cache folder: the one named, else $HF_HUB_CACHE as it is now (huggingface_hub
    reads it once, at import), else huggingface_hub's own."""
    from huggingface_hub import constants
    return Path(cache_dir or os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE)


def _snapshot(repo: str, cache_dir: str | None) -> Path | None:
    """The cached snapshot of a model repo's main revision (refs/main), or None."""
    root = _hub_cache(cache_dir) / ("models--" + repo.replace("/", "--"))
    try:
        revision = (root / "refs" / "main").read_text().strip()
    except OSError:
        return None
    folder = root / "snapshots" / revision
    return folder if folder.is_dir() else None


def _missing(folder: Path | None) -> list[str]:
    """What a model folder lacks to load: [] when complete; a list of "one of (...)" otherwise."""
    has = lambda names: folder is not None and any((folder / n).is_file() for n in names)  # noqa: E731
    if has((_OPEN_CLIP_CONFIG,)):
        needs = [_OPEN_CLIP_WEIGHTS]
    elif has(("config.json",)):
        needs = [WEIGHT_FILES, _PROCESSOR_FILES, _TOKENIZER_FILES]
    else:
        needs = [(_OPEN_CLIP_CONFIG, "config.json")]
    return [" or ".join(names) for names in needs if not has(names)]


def offline_fetch_error(name: str, repo: str, missing: list[str]) -> str:
    """The message for hub files this offline machine cannot fetch: the model, the files, the fix."""
    return (f"{name} needs {'; '.join(missing)} from the Hugging Face Hub repo {repo}, which is not in the local "
            f"cache, and this machine is offline. Download it once where there is a network "
            f"(`hf download {repo}`, then copy the cache folder {os.environ.get('HF_HOME', '~/.cache/huggingface')}), "
            f"or save the repo to a folder and pass its path.")


def require_hub_files(name: str, model_cfg: dict, cache_dir: str | None = None) -> bool:
    """For an open_clip architecture whose text tower comes from the hub (a tokenizer, an HF text model):
    whether it does. Offline with those files not cached, fail at once naming them (open_clip would retry
    the hub for a minute, then say only that it couldn't connect); online, open_clip downloads them."""
    text = model_cfg.get("text_cfg", {})
    needs = [(text[k], files) for k, files in (("hf_tokenizer_name", ("tokenizer_config.json", "tokenizer.json")),
                                               ("hf_model_name", ("config.json",))) if text.get(k)]
    for repo, files in needs:
        snapshot = _snapshot(repo, cache_dir)
        if not any(snapshot is not None and (snapshot / f).is_file() for f in files) and offline():
            raise ModelNotAvailable(offline_fetch_error(name, repo, [" or ".join(files)]))
    return bool(needs)


def _download(repo: str, cache_dir: str | None) -> Path:
    """The repo's config, processor and tokenizer files and one copy of its weights (transformers' or
    open_clip's, safetensors first), not every format the repo ships."""
    from huggingface_hub import HfApi, snapshot_download
    files = set(HfApi().list_repo_files(repo))
    weights = _OPEN_CLIP_WEIGHTS if _OPEN_CLIP_CONFIG in files else WEIGHT_FILES
    chosen = next((w for w in weights if w in files), None)
    if chosen is None:
        raise ModelNotAvailable(f"{HUB_PREFIX}{repo} has none of {list(weights)} (a sharded or other-format repo)")
    return Path(snapshot_download(repo, cache_dir=str(_hub_cache(cache_dir)),
                                  allow_patterns=[*_CONFIG_FILES, _OPEN_CLIP_CONFIG, chosen]))


def resolve_folder(name: str, cache_dir: str | None = None) -> Path:
    """A model folder on disk for a path or an "hf-hub:org/repo" id: the cached snapshot when it holds
    everything the model needs, else a download (online) or ModelNotAvailable naming the missing files."""
    if not name.startswith(HUB_PREFIX):
        return Path(name)
    repo = name[len(HUB_PREFIX):].strip("/")
    snapshot = _snapshot(repo, cache_dir)
    missing = _missing(snapshot)
    if not missing:
        return snapshot
    if offline():
        raise ModelNotAvailable(offline_fetch_error(name, repo, missing))
    try:
        folder = _download(repo, cache_dir)
    except ModelNotAvailable:
        raise
    except Exception as e:  # noqa: BLE001  the hub's errors are many; the message keeps their first line
        raise ModelNotAvailable(f"cannot download {name}: {str(e).strip().splitlines()[0][:200]}") from None
    missing = _missing(folder)
    if missing:
        raise ModelNotAvailable(f"{name} on the hub lacks {'; '.join(missing)}")
    return folder


def cached_transformers_models(cache_dir: str | None = None) -> list[str]:
    """"hf-hub:org/repo" for each model repo whose main revision in the Hugging Face cache is a complete
    transformers checkpoint the lab reads (a glob over the cache's snapshots: no file is read but configs)."""
    found = []
    for repo_dir in sorted(_hub_cache(cache_dir).glob("models--*")):
        repo = repo_dir.name[len("models--"):].replace("--", "/")
        snapshot = _snapshot(repo, cache_dir)
        if snapshot is None or _missing(snapshot) or folder_format(snapshot) != "transformers":
            continue
        try:
            transformers_type(snapshot)
        except ModelNotAvailable:
            continue
        found.append(HUB_PREFIX + repo)
    return found
