"""The docs' examples, run: every ```python and ```bash / ```sh / ```shell block in README.md, docs/*.md and
notebooks/README.md is one test (its id: the file and the line of its opening fence), so no example rots.

    .venv/bin/python -m pytest -q tests/test_docs.py
    .venv/bin/python -m pytest -q tests/test_docs.py -k workshop-setup     # one file's blocks

How a block runs (a skipped one is still parsed, and a Python one's imports run):
- Python: in this process, in a fresh namespace (each example in the docs stands alone), with a
  temporary working folder as the current directory; a traceback names the markdown file and line.
- Shell: `bash -e -o pipefail` in a temporary working folder, this Python's folder (the .venv's bin)
  first on PATH, so `python -m lab ...` is the lab under test; a failing line fails the block.
Both get a fresh LAB_CACHE_DIR (tests/conftest.py's autouse fixture) and a working folder laid out as
`workdir` says: a few images in `images/`, an empty `docs/`, and, for a block that names cache.zip, a
workshop cache.zip (`workshop prepare --modules M0`) already unpacked into the cache folder, as a
learner's machine is after docs/workshop-setup.md's step 2.

A block that cannot run here (network, GPU, user data, minutes of compute) has an HTML comment on the
line just before its fence, and is skipped with exactly the reason it gives:

    <!-- docs-test: skip (downloads OpenAI's weights) -->
"""
from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import write_images

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "notebooks" / "README.md"]
LANGUAGES = {"python": "python", "py": "python", "bash": "bash", "sh": "bash", "shell": "bash"}
FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([^\s`]*)")
MARKER = re.compile(r"^\s*<!--\s*docs-test:(.*?)-->\s*$")
SKIP = re.compile(r"^\s*skip\s*\((.*\S.*)\)\s*$")
MOVED = r".* moved to .*; import it from there"  # lab/_moved.py's warning for a path before the regrouping
SHELL_TIMEOUT = 300  # seconds; the slowest block that runs takes about 20 s on 2 cores


@dataclass(frozen=True)
class Block:
    path: Path
    line: int           # 1-based line of the opening fence
    language: str       # "python" or "bash"
    code: str
    marker: str | None  # the text of a `<!-- docs-test: ... -->` comment on the line before the fence

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def skip_reason(self) -> str | None:
        match = SKIP.match(self.marker or "")
        return match.group(1).strip() if match else None


def fenced_blocks(path: Path) -> list[Block]:
    """Every runnable fenced block of a markdown file, in order (other languages are left out)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, language = opening.group(1), opening.group(2).lower()
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip().startswith(fence)
                    and not lines[j].strip().strip(fence[0])), len(lines))
        if language in LANGUAGES:
            marker = MARKER.match(lines[i - 1]) if i else None
            blocks.append(Block(path, i + 1, LANGUAGES[language], "\n".join(lines[i + 1:end]) + "\n",
                                marker.group(1).strip() if marker else None))
        i = end + 1
    return blocks


def markers(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every docs-test comment in a file, wherever it stands."""
    return [(n, m.group(1).strip()) for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if (m := MARKER.match(line))]


BLOCKS = [block for path in DOCS if path.exists() for block in fenced_blocks(path)]


# -- the working folder ---------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def workshop_zip(tmp_path_factory) -> Path:
    """A real workshop cache.zip, prepared for module M0 only (about 10 s; all modules take minutes)."""
    out = tmp_path_factory.mktemp("workshop") / "cache.zip"
    env = {**os.environ, "LAB_CACHE_DIR": str(out.parent / "prepare-cache")}
    log = out.parent / "prepare.log"
    with open(log, "w") as f:
        run = subprocess.run([sys.executable, "-m", "lab", "workshop", "prepare", "--modules", "M0", "--out", str(out)],
                             stdout=f, stderr=subprocess.STDOUT, env=env, timeout=SHELL_TIMEOUT)
    assert run.returncode == 0, log.read_text()
    return out


@pytest.fixture
def workdir(request, tmp_path) -> Path:
    """The folder a block runs in: images/ (3 small PNGs), an empty docs/ (as in a checkout), and for a
    block that names cache.zip, the workshop's cache.zip, unpacked into the cache folder (step 2)."""
    folder = tmp_path / "work"
    write_images(folder / "images", 3)
    (folder / "docs").mkdir()
    block = request.node.callspec.params["block"]
    if "cache.zip" in block.code:
        prepared = request.getfixturevalue("workshop_zip")
        shutil.copy(prepared, folder / "cache.zip")
        with zipfile.ZipFile(prepared) as z:
            z.extractall(os.environ["LAB_CACHE_DIR"])
    return folder


# -- running a block ------------------------------------------------------------------------------------

def run_python(block: Block, imports_only: bool = False) -> None:
    """Execute the block as a script (or only its top-level imports). A traceback names it
    `<README.md:313>` and counts lines as the markdown file does; an old lab path fails it."""
    tree = ast.parse("\n" * block.line + block.code, f"<{block.id}>")
    if imports_only:
        tree.body = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    with warnings.catch_warnings():
        warnings.filterwarnings("error", MOVED, DeprecationWarning)
        exec(compile(tree, f"<{block.id}>", "exec"), {"__name__": "__main__"})


def check_skipped(block: Block) -> None:
    """What can be checked of a block that does not run: Python parses and its imports resolve
    (offline and quick: a renamed module still fails), a shell block parses (`bash -n`)."""
    if block.language == "python":
        run_python(block, imports_only=True)
    else:
        parsed = subprocess.run(["bash", "-n", "-c", block.code], capture_output=True, text=True)
        assert parsed.returncode == 0, f"{block.id} does not parse: {parsed.stderr}"


def shell_env() -> dict:
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.pop("PYTHONPATH", None)
    return env


def run_shell(block: Block, folder: Path) -> None:
    run = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block.code], cwd=folder, env=shell_env(),
                         capture_output=True, text=True, timeout=SHELL_TIMEOUT)
    assert run.returncode == 0, (f"{block.id} exited with {run.returncode}\n--- stdout\n{run.stdout[-4000:]}"
                                 f"\n--- stderr\n{run.stderr[-4000:]}")


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_doc_block(block: Block, request, monkeypatch):
    if block.marker is not None and block.skip_reason is None:
        pytest.fail(f"{block.id}: a docs-test comment must read 'skip (reason)', not {block.marker!r}")
    if block.skip_reason:
        check_skipped(block)
        pytest.skip(block.skip_reason)
    workdir = request.getfixturevalue("workdir")  # after the skip: a skipped block prepares nothing
    assert os.environ["LAB_CACHE_DIR"].startswith(str(workdir.parent))  # conftest's fresh cache, never the user's
    monkeypatch.chdir(workdir)
    if block.language == "python":
        run_python(block)
    else:
        run_shell(block, workdir)


# -- the collector itself -------------------------------------------------------------------------------

def test_the_readme_has_blocks_that_run():
    readme = [b for b in BLOCKS if b.path == ROOT / "README.md"]
    assert len(readme) >= 5
    running = {b.language for b in readme if b.marker is None}
    assert running == {"python", "bash"}, running


def test_every_marker_skips_a_block_with_a_reason():
    """A marker must say `skip (reason)` and stand on the line just before a collected fence: a misplaced
    or misspelt one would otherwise leave its block running (or silently mean nothing)."""
    marked = {(b.path, b.line - 1) for b in BLOCKS if b.marker is not None}
    wrong = [f"{path.relative_to(ROOT)}:{n}: {text!r}" for path in DOCS if path.exists() for n, text in markers(path)
             if (path, n) not in marked or not SKIP.match(text)]
    assert not wrong, "docs-test comments that skip no block or give no reason:\n" + "\n".join(wrong)
    assert all(b.skip_reason for b in BLOCKS if b.marker is not None)


def test_the_collector_reads_fences_as_markdown_does(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("text\n\n```bash\necho one\n```\n\n<!-- docs-test: skip (needs a GPU) -->\n````python\n"
                   "x = 1\n```\nnot a fence end\n````\n\n```text\nnot run\n```\n\n~~~sh\necho two\n~~~\n"
                   "<!-- docs-test: skip () -->\n```shell title=x\nls\n```\n")
    blocks = fenced_blocks(doc)
    assert [(b.line, b.language) for b in blocks] == [(3, "bash"), (8, "python"), (18, "bash"), (22, "bash")]
    assert blocks[0].code == "echo one\n" and blocks[0].skip_reason is None
    assert blocks[1].skip_reason == "needs a GPU" and blocks[1].code == "x = 1\n```\nnot a fence end\n"
    assert blocks[3].marker == "skip ()" and blocks[3].skip_reason is None  # no reason: test_doc_block fails it
