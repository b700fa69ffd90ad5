"""Where a model's files are and which library reads them, without importing torch: a local folder
or an "hf-hub:org/repo" id, found in the Hugging Face cache or downloaded, and on a machine without a
network a fast, precise failure instead of the hub's retries.

    folder = resolve_folder("hf-hub:google/siglip-base-patch16-224")   # the snapshot on disk
    folder_format(folder)        # "open_clip" (open_clip_config.json) or "transformers" (config.json)
    transformers_type(folder)    # "clip", "siglip", "metaclip_2"; siglip2 (NaFlex) is refused, saying why
    cached_transformers_models() # ["hf-hub:org/repo", ...] already in the Hugging Face cache

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
           "resolve_folder", "hf_file_missing", "require_hub_files", "weights_file", "folder_files_digest", "cached_transformers_models"]

HUB_PREFIX = "hf-hub:"
# model_type -> the family's name; each is read by lab.core._hf
TRANSFORMERS_TYPES = {"clip": "CLIP", "siglip": "SigLIP", "metaclip_2": "MetaCLIP 2"}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # transformers' names, in the order it prefers them
# what else decides a transformers checkpoint's embeddings: its config, processor and tokenizer
_CONFIG_FILES = ("config.json", "preprocessor_config.json", "processor_config.json", "tokenizer.json",
                 "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt", "spiece.model",
                 "sentencepiece.bpe.model")
_OPEN_CLIP_CONFIG = "open_clip_config.json"
_REFUSED = {
    "siglip2": "is a SigLIP 2 NaFlex checkpoint (variable patch grids that keep each image's aspect ratio, "
               "fed as patch sequences with their own masks), which the lab's fixed-size image pipeline does not "
               "reproduce. Use a fixed-resolution SigLIP 2 checkpoint instead (model_type 'siglip', e.g. "
               "google/siglip2-base-patch16-224), or transformers' Siglip2Model directly.",
}


def offline(host: str = "huggingface.co") -> bool:
    """No network for the hub: HF_HUB_OFFLINE is set, or its host does not resolve."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
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
        model_type = json.loads(path.read_text()).get("model_type")
    except (OSError, ValueError) as e:
        raise ModelNotAvailable(f"{path}: not a readable transformers config ({e})") from None
    if model_type in _REFUSED:
        raise ModelNotAvailable(f"{folder} {_REFUSED[model_type]}")
    if model_type not in TRANSFORMERS_TYPES:
        raise ModelNotAvailable(
            f"{folder} holds a transformers {model_type!r} model; the lab reads {sorted(TRANSFORMERS_TYPES)} "
            "checkpoints (CLIP, MetaCLIP, SigLIP, fixed-resolution SigLIP 2, MetaCLIP 2) and open_clip folders "
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


def _hub_cache(cache_dir: str | None) -> str:
    """The Hugging Face cache folder: the one named, else $HF_HUB_CACHE as it is now (huggingface_hub
    reads it once, at import), else huggingface_hub's own."""
    from huggingface_hub import constants
    return cache_dir or os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE


def _cached(repo: str, filename: str, cache_dir: str | None) -> str | None:
    from huggingface_hub import try_to_load_from_cache
    hit = try_to_load_from_cache(repo, filename, cache_dir=_hub_cache(cache_dir))
    return hit if isinstance(hit, str) and os.path.isfile(hit) else None


def hf_file_missing(name: str, repo: str, files: tuple[str, ...], cache_dir: str | None = None) -> str | None:
    """None when one of `files` of a hub repo is in the local cache; else the message for a machine
    that cannot download it (offline), naming the model, the file and the fix; "" when online."""
    if any(_cached(repo, f, cache_dir) for f in files):
        return None
    if not offline():
        return ""
    return (f"{name} needs {' or '.join(files)} from the Hugging Face Hub repo {repo}, which is not in the local "
            f"cache, and this machine is offline. Download it once where there is a network "
            f"(`hf download {repo}`, then copy the cache folder {os.environ.get('HF_HOME', '~/.cache/huggingface')}), "
            f"or save the repo to a folder and pass its path.")


def require_hub_files(name: str, model_cfg: dict) -> None:
    """Fail fast, naming the file, when an open_clip text tower needs a hub tokenizer or config that is
    not cached and this machine is offline (open_clip would retry the hub for a minute, then say only
    that it couldn't connect); online, open_clip downloads them as usual."""
    text = model_cfg.get("text_cfg", {})
    needs = [(text[k], files) for k, files in (("hf_tokenizer_name", ("tokenizer_config.json", "tokenizer.json")),
                                               ("hf_model_name", ("config.json",))) if text.get(k)]
    for repo, files in needs:
        missing = hf_file_missing(name, repo, files)
        if missing:
            raise ModelNotAvailable(missing)


def resolve_folder(name: str, cache_dir: str | None = None) -> Path:
    """A model folder on disk for a path or an "hf-hub:org/repo" id: the cached snapshot when its
    config is cached, else a download (online) or ModelNotAvailable naming the missing file (offline)."""
    if not name.startswith(HUB_PREFIX):
        return Path(name)
    repo = name[len(HUB_PREFIX):].strip("/")
    for config in (_OPEN_CLIP_CONFIG, "config.json"):
        hit = _cached(repo, config, cache_dir)
        if hit is not None:
            return Path(hit).parent
    missing = hf_file_missing(name, repo, (_OPEN_CLIP_CONFIG, "config.json"), cache_dir)
    if missing:
        raise ModelNotAvailable(missing)
    from huggingface_hub import snapshot_download
    try:
        return Path(snapshot_download(repo, cache_dir=_hub_cache(cache_dir), allow_patterns=[
            "*.json", "*.txt", "*.model", "model.safetensors", "pytorch_model.bin", "open_clip_*"]))
    except Exception as e:  # noqa: BLE001  the hub's errors are many; the message keeps their first line
        raise ModelNotAvailable(f"cannot download {name}: {str(e).strip().splitlines()[0][:200]}") from None


def cached_transformers_models(cache_dir: str | None = None) -> list[str]:
    """"hf-hub:org/repo" for each model repo in the Hugging Face cache whose config the lab reads."""
    from huggingface_hub import scan_cache_dir
    try:
        repos = scan_cache_dir(_hub_cache(cache_dir)).repos
    except Exception:  # noqa: BLE001  no cache folder yet, or one scan_cache_dir cannot read
        return []
    found = []
    for repo in sorted(repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        for rev in repo.revisions:
            names = {f.file_name: f.file_path for f in rev.files}
            if "config.json" not in names or not any(w in names for w in WEIGHT_FILES):
                continue
            try:
                transformers_type(Path(names["config.json"]).parent)
            except ModelNotAvailable:
                continue
            found.append(HUB_PREFIX + repo.repo_id)
            break
    return found
