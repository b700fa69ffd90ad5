"""What a distributed run reads: folders, .txt path lists, image files, webdataset .tar shards and
brace / glob patterns, expanded into units (a file, or a shard and its image members) before
anything starts, so a wrong pattern fails at once.

    expand_braces("shards/{00000..00002}.tar")   # ['shards/00000.tar', 'shards/00001.tar', 'shards/00002.tar']
    expand_sources(["photos/", "shards/{000..009}.tar"])   # [(path, members or None), ...]
"""
from __future__ import annotations

import glob
import os
import re
import tarfile
from pathlib import Path

from ..data.folder import IMAGE_EXTENSIONS, list_images
from ..errors import LabError

__all__ = ["expand_braces", "expand_sources"]

_BRACE = re.compile(r"\{([^{}]*)\}")


def expand_braces(pattern: str) -> list[str]:
    """Brace expansion as webdataset and the shell do it: {00000..00640} (zero padding kept),
    {a,b,c}; several groups multiply."""
    m = _BRACE.search(pattern)
    if not m:
        return [pattern]
    body, head, tail = m.group(1), pattern[:m.start()], pattern[m.end():]
    numeric = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if numeric:
        a, b = numeric.groups()
        width = len(a) if a.startswith("0") and len(a) > 1 else 0
        step = 1 if int(b) >= int(a) else -1
        choices = [str(i).zfill(width) for i in range(int(a), int(b) + step, step)]
    elif "," in body:
        choices = body.split(",")
    else:
        raise LabError(f"{pattern}: cannot expand {{{body}}}; use {{000..099}} or {{a,b}}")
    return [out for c in choices for out in expand_braces(head + c + tail)]


def _matches(source: str) -> list[str]:
    """A source's paths: itself, or what its braces and globs expand to (an error when nothing matches)."""
    if not re.search(r"[{*?\[]", source):
        return [source]
    found, missing = [], []
    for p in expand_braces(source):
        if re.search(r"[*?\[]", p):
            found += sorted(glob.glob(p))
        elif os.path.exists(p):
            found.append(p)
        else:
            missing.append(p)
    if missing:
        raise LabError(f"{source}: {len(missing)} expanded path(s) do not exist ({', '.join(missing[:3])}"
                       f"{' ...' if len(missing) > 3 else ''}); fix the pattern or the range")
    if not found:
        raise LabError(f"{source} matches no file; check the pattern (ranges like shards/{{00000..00009}}.tar, "
                       "globs like photos/*.jpg)")
    return found


def _tar_members(path: str) -> list[str]:
    """Image members of a tar shard, in archive order."""
    try:
        with tarfile.open(path) as tf:
            return [m.name for m in tf if m.isfile() and os.path.splitext(m.name)[1].lower() in IMAGE_EXTENSIONS
                    and "." in os.path.basename(m.name)[1:]]
    except (OSError, tarfile.TarError) as e:
        raise LabError(f"{path}: not a readable tar shard ({e}); pass webdataset .tar files") from None


def expand_sources(sources) -> list[tuple[str, list[str] | None]]:
    """Folders, .txt path lists, image files, .tar shards and brace/glob patterns -> units
    [(path, None) for a file, (shard, [member, ...]) for a tar], in order, each item once.
    A pattern that matches nothing is an error here, before anything starts."""
    units, seen = [], set()
    for source in ([sources] if isinstance(sources, (str, os.PathLike)) else sources):
        for p in _matches(os.fspath(source)):
            if os.path.isdir(p):
                found = list_images(p)
                if not found:
                    raise LabError(f"{p} contains no image files ({', '.join(IMAGE_EXTENSIONS)})")
                new = [(os.path.abspath(f), None) for f in found]
            elif p.lower().endswith(".tar"):
                new = [(os.path.abspath(p), _tar_members(p))]
            elif p.lower().endswith(".txt") and os.path.isfile(p):
                base = Path(p).parent
                new = [(os.path.abspath(base / line.strip()), None) for line in Path(p).read_text().splitlines()
                       if line.strip()]
            else:
                new = [(os.path.abspath(p), None)]  # a missing file becomes an error row, as in-process
            for unit in new:
                if unit[0] not in seen:
                    seen.add(unit[0])
                    units.append(unit)
    return units
