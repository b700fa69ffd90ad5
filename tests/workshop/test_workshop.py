"""The teaching workshop: one source built into editions that run, checks that teach without leaking,
an agenda that fits, a machine check and a cache hand-out. The workshop is built once per session
(real notebook executions on the built-in models) into a session cache; module times are printed.
The notebook kernels see no GPU (NO_GPU): the workshop is taught on laptops, its notebooks take no
device, and m3 builds CPU tensors for the model (a CUDA model would fail there)."""
import html
import json
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest

from lab.workshop import build as wb
from lab.workshop import checks, room
from lab.workshop import source as src

MARKS = re.compile(r"^([✓✗○]) (m\d\.[a-z_0-9]+): (.*)$", re.M)
NO_GPU = ("CUDA_VISIBLE_DEVICES", "")  # the kernels inherit it: lab.load_model's default is then the CPU


def _files(folder: Path):
    return sorted(p for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("workshop-cache")


@pytest.fixture(scope="session")
def built(tmp_path_factory, session_cache):
    """Two builds (the first cold, the second warm) -> (first folder, second folder, times)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("LAB_CACHE_DIR", str(session_cache))
    mp.setenv(*NO_GPU)
    try:
        first, second = tmp_path_factory.mktemp("ws1"), tmp_path_factory.mktemp("ws2")
        cold = wb.build(first, progress=False)
        warm = wb.build(second, progress=False)
    finally:
        mp.undo()
    times = {stem: (sum(cold[stem].values()), sum(warm[stem].values())) for stem in cold}
    print("\nworkshop module compute times (cold, warm):",
          ", ".join(f"{k} {c:.1f} s / {w:.1f} s" for k, (c, w) in times.items()))
    return first, second, times


def _marks(nb) -> list[tuple[str, str, str]]:
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    return MARKS.findall(text)


def _all_checks() -> set:
    return set(checks.EXERCISES) | set(checks.ANSWERS)


def test_solutions_execute_and_pass_every_check(built):
    first, _, _ = built
    seen = set()
    for path in sorted((first / "solutions").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert not wb.errors_in(nb), path.name
        marks = _marks(nb)
        assert marks and all(m == "✓" for m, _, _ in marks), (path.name, [x for x in marks if x[0] != "✓"])
        seen |= {name for _, name, _ in marks}
    assert seen == _all_checks()  # every exercise and question is used, and passes


def test_learner_edition_runs_top_to_bottom_with_nothing_attempted(built, session_cache, monkeypatch):
    from lab.report import this_python_kernel
    first, _, _ = built
    monkeypatch.setenv("LAB_CACHE_DIR", str(session_cache))
    monkeypatch.setenv(*NO_GPU)  # the device the build filled the cache on
    seen = set()
    with this_python_kernel() as kernel:
        for path in sorted((first / "student").glob("*.ipynb")):
            nb = nbformat.read(path, as_version=4)
            wb.execute(nb, Path(wb.__file__).resolve().parents[2], kernel)  # raises on any error
            marks = _marks(nb)
            assert marks and all(m == "○" and "not attempted" in msg for m, _, msg in marks), path.name
            seen |= {name for _, name, _ in marks}
            text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
            for name in {n for _, n, _ in marks if n in checks.EXERCISES}:
                assert f"↪ {name}: continuing with the reference solution" in text
    assert seen == _all_checks()


def test_no_solution_line_reaches_the_learner_edition_handout_or_site(built):
    first, _, _ = built
    lines = set()
    for module in src.load().modules:
        for cell in module.notebook.cells:
            if cell.cell_type == "code":
                lines |= {ln.strip() for ln in wb.solution_lines(cell.source) if len(ln.strip()) >= 12}
    assert len(lines) > 20
    targets = _files(first / "student") + _files(first / "site") + [first / "handout.md", first / "handout.html"]
    for path in targets:
        text = path.read_text(encoding="utf-8")
        variants = [text, html.unescape(text), json.dumps(text)]
        leaked = [ln for ln in lines if any(ln in v for v in variants)]
        assert not leaked, (path.name, leaked)


def test_editions_have_what_they_promise(built):
    first, _, _ = built
    for path in sorted((first / "student").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert not any(src.is_instructor(c) for c in nb.cells)
        assert all(not c.outputs for c in nb.cells if c.cell_type == "code")
        assert any(wb.STUB in c.source for c in nb.cells)
        inst = nbformat.read(first / "instructor" / path.name, as_version=4)
        banners = [c.source for c in inst.cells if "timing" in c.metadata.get("tags", [])]
        assert len(banners) == sum("section" in src.meta(c) for c in nb.cells)
        assert all("from start" in b and "compute" in b for b in banners)
        assert any(src.is_instructor(c) and "timing" not in c.metadata.get("tags", []) for c in inst.cells)
    handout = (first / "handout.md").read_text()
    assert all(name in handout for name in checks.EXERCISES)
    site = first / "site"
    assert (site / "index.html").exists() and len(list(site.glob("*.html"))) == 2 + len(src.load().modules)
    for path in _files(site):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|@import|url\(\s*["']?https?:""", text), path.name


def test_two_builds_are_byte_identical(built):
    first, second, _ = built
    names = [p.relative_to(first) for p in _files(first)]
    assert names == [p.relative_to(second) for p in _files(second)]
    different = [str(n) for n in names if (first / n).read_bytes() != (second / n).read_bytes()]
    assert not different


def test_module_times_are_measured(built):
    _, _, times = built
    assert set(times) == {m.path.stem for m in src.load().modules}
    assert all(cold > 0 and warm > 0 for cold, warm in times.values())


# -- checks ----------------------------------------------------------------------------------------

def _wrong_answers(ex: checks.Exercise) -> list:
    """At least 20 wrong functions for one exercise: its named mistakes and generic slips."""
    ref = ex.reference
    out = list(ex.mistakes.values())

    def raising(*a):
        raise ValueError("shapes do not align")

    if ex.kind == "bool":
        generic = [lambda *a: not ref(*a), lambda *a: True, lambda *a: False, lambda *a: 1, lambda *a: "yes",
                   lambda *a: None, raising, lambda *a: [ref(*a)], lambda *a: np.array([ref(*a)] * 2),
                   lambda *a: bool(a[1][np.unravel_index(np.argmax(a[0]), a[0].shape)[0], 0]),
                   lambda *a: bool(a[1].any()), lambda *a: bool(a[1].all()), lambda *a: bool(a[0].max() > 0.5),
                   lambda *a: bool(a[1][0, 0]), lambda *a: bool(a[1][-1, -1]), lambda *a: bool(a[1].mean() > 0.4),
                   lambda *a: bool(a[1].flat[np.argmin(a[0])] and a[1].flat[np.argmax(a[0])]),
                   lambda *a: bool(a[1].flat[np.argmax(a[0])] or a[1].flat[np.argmin(a[0])]),
                   lambda *a: bool(a[1].flat[np.argsort(a[0], axis=None)[-2]])]
    else:
        generic = [lambda *a: 2 * np.asarray(ref(*a)), lambda *a: np.asarray(ref(*a)) + 1,
                   lambda *a: -np.asarray(ref(*a)), lambda *a: np.zeros_like(np.asarray(ref(*a), dtype=float)),
                   lambda *a: np.ones_like(np.asarray(ref(*a), dtype=float)), lambda *a: None, raising,
                   lambda *a: "42", lambda *a: {"value": 1}, lambda *a: np.asarray(ref(*a)) * 1.01,
                   lambda *a: np.asarray(ref(*a)) + 1e-2, lambda *a: np.round(np.asarray(ref(*a), dtype=float) + 0.5),
                   lambda *a: np.full(np.shape(ref(*a)), np.nan), lambda *a: np.asarray(ref(*a)) ** 2 + 0.1,
                   lambda *a: np.append(np.ravel(ref(*a)), 0.0), lambda *a: np.ravel(ref(*a))[::-1] + 0.3,
                   lambda *a: np.sqrt(np.abs(np.asarray(ref(*a), dtype=float))) + 0.2,
                   lambda *a: np.asarray(ref(*a)) - np.mean(ref(*a)) + 7,
                   lambda *a: np.exp(np.asarray(ref(*a), dtype=float) / 50)]
        if ex.kind == "array":
            generic += [lambda *a: np.asarray(ref(*a)).T if np.ndim(ref(*a)) == 2 else np.asarray(ref(*a))[None],
                        lambda *a: np.asarray(ref(*a))[..., :-1]]
    return out + generic


def _reference_strings(ex, seed) -> set:
    """How the reference's outputs for the check's own inputs (same seed) could be printed."""
    rng = np.random.default_rng(seed)
    values = []
    for t in range(ex.trials):
        values += list(np.ravel(np.asarray(ex.reference(*ex.inputs(rng, t)), dtype=float)))
    return {s for v in values for s in (f"{v:.2f}", f"{v:.3f}", repr(float(v)))
            if len(s.strip("-0.")) >= 2}


@pytest.mark.parametrize("name", sorted(checks.EXERCISES))
def test_wrong_answers_get_a_hint_and_never_the_reference(name, capsys):
    ex = checks.EXERCISES[name]
    wrong = _wrong_answers(ex)
    assert len(wrong) >= 20
    for k, fn in enumerate(wrong):
        seed = 1000 + k
        result = checks.check(name, fn, seed=seed)
        assert result.status == "hint", (name, k, str(result))
        assert result.message and not re.search(r"\d\.\d", result.message), (name, k, result.message)
        leaked = [s for s in _reference_strings(ex, seed) if s in result.message]
        assert not leaked, (name, k, leaked)
    assert "✗" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(checks.EXERCISES))
def test_reference_passes_a_stub_is_not_attempted_and_catch_up_keeps_the_attempt(name):
    ex = checks.EXERCISES[name]
    assert checks.check(name, ex.reference).status == "correct"

    def stub(*args):
        raise NotImplementedError()
    assert checks.check(name, stub).status == "not attempted"
    assert checks.catch_up(name, stub) is ex.reference and checks.attempts[name] is stub
    mine = ex.reference.__call__  # a correct attempt of one's own is kept in use
    assert checks.catch_up(name, mine) is mine


def test_named_mistakes_are_named():
    result = checks.check("m1.ensemble", lambda p: (p / np.linalg.norm(p, axis=-1, keepdims=True)).mean(0))
    assert "forgot to renormalise" in result.message
    assert "missing logit scale" in checks.check("m1.logits", lambda x, w, s: x @ w.T).message
    assert "transposed" in checks.check("m1.logits", lambda x, w, s: s * w @ x.T).message
    assert "subtract each row's maximum" in checks.check(
        "m1.softmax", lambda z: np.exp(z) / np.exp(z).sum(-1, keepdims=True)).message


def test_every_named_mistake_gets_its_own_hint():
    for name, ex in checks.EXERCISES.items():
        for hint, mistake in ex.mistakes.items():
            for seed in range(3):
                assert checks.check(name, mistake, seed=seed).message == hint, (name, hint)


def _unit(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def _rows_ce(z):
    z = z - z.max(1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(1)) - np.diag(z)))


def test_clip_loss_is_checked_against_the_trainers_loss():
    import torch
    from lab.training.train import clip_loss
    rng = np.random.default_rng(0)
    img, txt = rng.normal(size=(6, 16)), rng.normal(size=(6, 16))
    with torch.no_grad():
        trainer = float(clip_loss(torch.tensor(img), torch.tensor(txt), torch.tensor(np.log(30.0))))
    assert checks.EXERCISES["m0.clip_loss"].reference(img, txt, 30.0) == pytest.approx(trainer, rel=1e-9)

    def mine(i, t, s):  # a learner's numpy solution
        z = s * _unit(i) @ _unit(t).T
        return (_rows_ce(z) + _rows_ce(z.T)) / 2
    assert checks.check("m0.clip_loss", mine).ok
    hints = {"one direction": lambda i, t, s: _rows_ce(s * _unit(i) @ _unit(t).T),
             "missing scale": lambda i, t, s: mine(i, t, 1.0),
             "no normalisation": lambda i, t, s: (_rows_ce(s * i @ t.T) + _rows_ce(s * t @ i.T)) / 2,
             "softmax over the whole matrix": lambda i, t, s: float(np.mean(
                 np.log(np.exp(s * _unit(i) @ _unit(t).T).sum()) - np.diag(s * _unit(i) @ _unit(t).T)))}
    for words, fn in hints.items():
        assert words in checks.check("m0.clip_loss", fn).message


def test_the_two_commonest_occlusion_bugs_are_named():
    def no_copy(score, image, patch):
        base, hidden = score(image), image
        drops = np.zeros((image.shape[0] // patch, image.shape[1] // patch))
        for r in range(drops.shape[0]):
            for c in range(drops.shape[1]):
                hidden[r * patch:(r + 1) * patch, c * patch:(c + 1) * patch] = 0
                drops[r, c] = base - score(hidden)
        return drops

    def swapped(score, image, patch):
        base = score(image)
        drops = np.zeros((image.shape[0] // patch, image.shape[1] // patch))
        for r in range(drops.shape[0]):
            for c in range(drops.shape[1]):
                hidden = image.copy()
                hidden[c * patch:(c + 1) * patch, r * patch:(r + 1) * patch] = 0
                drops[r, c] = base - score(hidden)
        return drops
    assert ".copy()" in checks.check("m3.occlusion", no_copy).message
    assert "rows and columns swapped" in checks.check("m3.occlusion", swapped).message


def test_mean_ablation_in_place_is_named_and_only_where_the_exercise_asks():
    def in_place(parts, ablated):  # right values, but the caller's parts end up ablated
        parts[:, ablated] = parts[:, ablated].mean(0)
        total = parts.sum(1)
        return total / np.linalg.norm(total, axis=1, keepdims=True)

    def on_a_copy(parts, ablated):
        kept = parts.copy()
        kept[:, ablated] = parts[:, ablated].mean(0)
        total = kept.sum(1)
        return total / np.linalg.norm(total, axis=1, keepdims=True)
    result = checks.check("m3.mean_ablate", in_place)
    assert result.status == "hint" and "in place" in result.message and "parts.copy()" in result.message
    assert checks.check("m3.mean_ablate", on_a_copy).ok
    assert checks.catch_up("m3.mean_ablate", in_place) is checks.EXERCISES["m3.mean_ablate"].reference

    def ensemble_in_place(p):  # exercises without keeps_inputs judge the values only, as before
        p /= np.linalg.norm(p, axis=-1, keepdims=True)
        mean = p.mean(0)
        return mean / np.linalg.norm(mean)
    assert checks.check("m1.ensemble", ensemble_in_place).ok


def test_m3_bonus_inside_the_embedding_runs_beside_the_core_with_its_exercise():
    from lab.workshop import guide
    workshop = src.load()
    [m3] = [m for m in workshop.modules if m.name == "M3"]
    [bonus] = [s for s in m3.sections if s.title == "Bonus: inside the embedding"]
    assert bonus.kind == "bonus" and bonus.teaching + bonus.exercises == bonus.minutes <= 5
    [row] = [r for r in src.schedule(workshop) if r["section"] == bonus.title]
    [core] = [r for r in src.schedule(workshop) if r["module"] == "M3" and r["section"] == row["beside"]]
    assert core["kind"] == "core" and row["offset"] == core["offset"]
    assert m3.minutes == sum(s.minutes for s in m3.sections if s.kind == "core")  # no minutes of its own
    assert ("m3.mean_ablate", "bonus") in [(name, kind) for name, kind, _ in m3.prompts("exercise")]
    cells, inside = m3.notebook.cells, False
    code = []
    for c in cells:
        inside = src.meta(c).get("section", bonus.title if inside else "") == bonus.title
        if inside and c.cell_type == "code":
            code.append(c.source)
    code = "\n".join(code)
    assert "dc.decompose_dataset(clip, test)" in code and "ts.text_span(" in code and "mean_ablate(" in code
    assert "**m3.mean_ablate · mean ablation** (bonus)" in wb.handout_markdown(workshop)
    text = guide.guide_markdown(workshop)
    assert "**m3.mean_ablate** (bonus)" in text and "changed `parts` in place" in text
    assert "| Bonus: inside the embedding | bonus | 5 |" in text


def test_busywork_exercises_are_gone_and_every_module_has_its_key_step():
    assert not {"m0.counts", "m3.normalize", "m4.logit"} & set(checks.EXERCISES)
    assert {"m0.clip_loss", "m5.per_class", "m5.attack"} <= set(checks.EXERCISES)


def _options(cell) -> dict:
    return dict(re.findall(r"^([a-d])\) (.+)$", cell.source, re.M))


def test_multiple_choice_answers_are_stored_hashed():
    source = Path(checks.__file__).read_text()
    questions = {src.meta(c)["question"] for m in src.load().modules for c in m.notebook.cells if "question" in src.meta(c)}
    assert questions == set(checks.ANSWERS) and all(len(q) >= 2 for q in questions)
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in checks.ANSWERS.values())
    assert not re.search(r'"m\d\.q\d":\s*"[a-d]"', source)
    for q in questions:
        statuses = [checks.answer(q, c).status for c in "abcd"]
        assert statuses.count("correct") == 1 and statuses.count("hint") == 3
        assert checks.answer(q, "").status == "not attempted"


def test_multiple_choice_feedback_explains_every_option_without_revealing_the_answer_in_the_source():
    source = Path(checks.__file__).read_text()
    cells = {src.meta(c)["question"]: c for m in src.load().modules for c in m.notebook.cells if "question" in src.meta(c)}
    right, longest = {}, 0
    for q, cell in cells.items():
        options = _options(cell)
        assert sorted(options) == list("abcd"), q
        for letter in "abcd":
            why = checks.explanation(q, letter)
            assert why and len(why) > 30, (q, letter)
            assert why[:25] not in source  # sealed, not in clear
            message = checks.answer(q, letter).message
            assert why in message and not re.fullmatch(r"'[a-d]' is not it.*try again", message)
        right[q] = next(c for c in "abcd" if checks.answer(q, c).ok)
        longest += max(options, key=lambda k: len(options[k])) == right[q]
    counts = [list(right.values()).count(c) for c in "abcd"]
    assert max(counts) - min(counts) <= 1, right  # answer letters balanced
    assert longest <= len(cells) // 4, right  # the right option is rarely the longest
    assert checks.answer("m0.q1", "z").status == "hint"


def test_each_module_has_objectives_keypoints_a_discussion_and_split_minutes():
    for m in src.load().modules:
        info = m.notebook.metadata["workshop"]
        assert info["objectives"] and all(isinstance(o, str) and o for o in info["objectives"]), m.name
        assert info["keypoints"] and all(isinstance(k, str) and k for k in info["keypoints"]), m.name
        assert isinstance(info["behind"], str) and len(info["behind"]) > 40, m.name
        discussions, kind = [], "core"
        for c in m.notebook.cells:
            meta = src.meta(c)
            if "section" in meta:
                kind = meta["kind"]
                assert meta["teaching"] + meta["exercises"] == meta["minutes"], (m.name, meta)
            if "discussion" in meta:
                discussions.append((meta["discussion"], kind))
        assert discussions == [(f"{m.name.lower()}.d1", "core")], m.name  # one prompt, in the core


def test_stale_statements_are_gone_and_the_limitations_module_is_hands_on():
    text = {m.name: "\n".join(c.source for c in m.notebook.cells) for m in src.load().modules}
    everything = "\n".join(text.values())
    for stale in ("Logits reach about 100", "learned temperature", "1.4 apart", "(a second)", "CNNs' line"):
        assert stale not in everything, stale
    assert "88.7" in text["M1"] and "1/0.07" in text["M1"] and "20–35" in text["M1"]
    assert "Fig. 14" in text["M4"] and "Fig. 13" in text["M4"] and "id_fit" in text["M4"] and "_low" in text["M4"]
    m5 = text["M5"]
    assert "lab-vit-literate" in m5 and "write_word" in m5 and "my_word" in m5
    assert all(n in m5 for n in ("70.0 %", "41.0 %", "9.9 %", "25 / 33 / 11 %"))
    assert "clip_loss" in text["M0"]


# -- source, agenda and room -----------------------------------------------------------------------

def test_strip_solutions_stubs_functions_and_drops_top_level_answers():
    code = "def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return x + y\n    ### END SOLUTION\n\n" \
           "a = ''\n### BEGIN SOLUTION\na = 'b'\n### END SOLUTION\ncheck(a)"
    student = wb.strip_solutions(code)
    assert "return x + y" not in student and "a = 'b'" not in student
    assert f"    {wb.STUB}" in student and student.endswith("a = ''\ncheck(a)")
    assert wb.solution_lines(code) == ["    return x + y", "a = 'b'"]
    assert "BEGIN" not in wb.remove_markers(code) and "return x + y" in wb.remove_markers(code)
    with pytest.raises(Exception, match="without"):
        wb.strip_solutions("### BEGIN SOLUTION\nx = 1")


def test_agenda_fits_the_day_and_prints_clock_times(capsys):
    from lab.cli import main
    workshop = src.load()
    tot = src.totals(workshop)
    assert tot["total"] == workshop.minutes == 180 and tot["bonus"] > 0 and tot["break"] >= 20
    assert tot["total"] == tot["core"] + tot["break"]  # bonus sections run beside the core, not after it
    rows = src.schedule(workshop)
    for r in rows:
        if r["kind"] == "bonus":
            [core] = [c for c in rows if c["module"] == r["module"] and c["section"] == r["beside"]]
            assert core["kind"] == "core" and r["offset"] == core["offset"]
    assert [m.name for m in workshop.modules] == ["M0", "M1", "M2", "M3", "M4", "M5"]
    assert workshop.items[-1].minutes == 5 and 18 <= workshop.modules[-1].minutes <= 25  # limitations, then wrap-up
    for m in workshop.modules:
        core = [s for s in m.sections if s.kind == "core"]
        assert core and any(s.kind == "bonus" for s in m.sections)
        exercises = [src.meta(c)["exercise"] for c in m.notebook.cells if "exercise" in src.meta(c)]
        assert 2 <= len([e for e in exercises if e in checks.EXERCISES]) <= 4
    assert main(["workshop", "agenda", "--start", "09:30"]) == 0
    out = capsys.readouterr().out
    assert "09:30" in out and "12:30  end" in out and "Drop these first" in out
    assert "[bonus, beside 'Explore: the prompt playground'" in out
    drop = out.split("Drop these first:")[1]
    assert "Explore" in drop and "Bonus" not in drop  # dropping a bonus saves the day no time
    assert main(["workshop", "agenda", "--start", "9h30"]) == 2


def test_machine_check_names_each_problem_with_its_fix(tmp_path, monkeypatch):
    from lab.report import this_python_kernel
    with this_python_kernel():
        assert room._kernel() == []
        assert room.check_machine() == []  # packages, both models encode, cache, kernel, front end
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("LAB_CACHE_DIR", str(blocked / "cache"))
    [problem] = room._cache()
    assert "not writable" in problem and "LAB_CACHE_DIR" in problem


def test_prepare_zips_the_cache_a_module_fills(tmp_path, monkeypatch):
    import zipfile
    monkeypatch.setenv(*NO_GPU)  # a hand-out for laptops: CPU (fp32) rows
    info = room.prepare(tmp_path / "cache.zip", modules=["M0"])
    assert info["bytes"] < room.MAX_ZIP_MB * 2 ** 20
    names = zipfile.ZipFile(info["path"]).namelist()
    assert "embeddings.sqlite3" in names and not any(n.endswith("-wal") for n in names)
