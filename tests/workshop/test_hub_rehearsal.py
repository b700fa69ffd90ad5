"""The workshop rehearsed on a real JupyterHub (issue 24, item 6).

JupyterHub (jupyterhub from PyPI, configurable-http-proxy from npm: `make hub-proxy`) runs on free
loopback ports with the dummy authenticator and jupyterhub's SimpleLocalProcessSpawner (no system
user is created; tests/workshop/_hub.py). Each simulated learner logs in through the hub's login
form, gets a token, starts a server through the hub's REST API, uploads the learner edition of M1
(`workshop build`) and runs it top to bottom through a session and the kernel's websocket, as
JupyterLab does, with LAB_CACHE_DIR on a read-only unpacked copy of `workshop prepare`'s cache.zip.
A lone learner runs first, then LEARNERS learners at once, then the lone learner again (its time
is the mean of the two runs, so a machine whose load changed meanwhile moves both sides).

Six learners (LAB_HUB_LEARNERS to change): the issue's number, and what this 2-core, 24 GiB machine
holds within the test's time. With the prepared cache a learner's kernel takes about 3.3 CPU seconds
for M1 (mostly imports) and 0.3 GB at its peak (1.1 GB and 7 s when the cache was prepared in another
checkout: the models' file hashes then miss and the models are built): six at once need about 10 s
of both cores and 2 GB, so memory is not what limits the room; six servers starting together take
about 20 s, and six learners keep the test near 2.5 minutes. Kernels follow the lab's default thread policy
(`fair`: torch gets the CPUs that others leave idle; LAB_THREADS / LAB_THREAD_POLICY set here reach
the kernels too), so they do not oversubscribe the two cores.

Asserted: every learner finishes M1 with no error output and every check "not attempted"; the cache
is unchanged (every file's sha256, SQLite's integrity check, no file added); no process of the
rehearsal is left. The whole rehearsal, preparation included, takes about 2 minutes here; every wait
has a timeout. The speed floor (slowest learner <= (learners / 2 + 1) x the lone learner's time) is a
benchmark's figure, not a timed test: `python benchmarks/bench_hub.py` prints it with its verdict.
"""
import os
import re

import pytest

from lab.workshop import checks

from _hub import Hub, kill_marked, learner_environment, make_root, read_only_copy, rehearse_room, \
    remove_tree, student_and_cache, tools_missing

LEARNERS = int(os.environ.get("LAB_HUB_LEARNERS", "6"))
MARKS = re.compile(r"^([✓✗○]) (m\d\.[a-z_0-9]+): (.*)$", re.M)


@pytest.fixture(scope="module")
def rehearsal(request, tmp_path_factory):
    missing = tools_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"the hub rehearsal cannot run in CI: {'; '.join(missing)}", pytrace=False)
        pytest.skip("; ".join(missing))
    nb_name, nb, zip_path = student_and_cache(tmp_path_factory.mktemp("hub-prepare"))
    root = make_root()
    request.addfinalizer(lambda: remove_tree(root))
    cache = read_only_copy(zip_path, root / "cache")
    names = [f"learner{i + 1}" for i in range(LEARNERS)]
    hub = Hub(root / "hub", ["solo", *names], environment=learner_environment(cache), timeout=120)
    request.addfinalizer(lambda: kill_marked(hub.token))  # whatever happens, nothing of it survives
    result = rehearse_room(hub, names, nb_name, nb, cache, limit=240)
    print(f"\nhub rehearsal of {nb_name}:\n{result.table()}")
    result.notebook = nb
    return result


def _runs(rehearsal):
    return rehearsal.lone + rehearsal.crowd


def test_every_learner_finishes_m1(rehearsal):
    error = rehearsal.lone[0].error
    hint = ("\nthe lab cannot use a read-only cache folder (LAB_CACHE_DIR on the shared copy)"
            if error and "readonly database" in error else "")
    assert not error, f"the lone learner failed: {error}{hint}\n{rehearsal.log[-3000:]}"
    assert len(rehearsal.crowd) == LEARNERS and len(rehearsal.lone) == 2
    code_cells = sum(c["cell_type"] == "code" for c in rehearsal.notebook["cells"])
    failed = {r.learner: r.error for r in _runs(rehearsal) if r.error}
    assert not failed, f"{failed}\n{rehearsal.table()}"
    for r in _runs(rehearsal):
        assert len(r.cells) == code_cells and all(c["status"] == "ok" for c in r.cells), r.learner


def test_no_error_output_and_every_check_not_attempted(rehearsal):
    expected = {name for name in set(checks.EXERCISES) | set(checks.ANSWERS) if name.startswith("m1.")}
    assert expected
    for r in _runs(rehearsal):
        errors = [o for o in r.outputs() if o["output_type"] == "error"]
        stderr = "".join(o["text"] for o in r.outputs() if o["output_type"] == "stream" and o["name"] == "stderr")
        assert not errors and not stderr, (r.learner, errors, stderr[:2000])
        marks = MARKS.findall(r.text())
        assert marks and all(m == "○" and "not attempted" in msg for m, _, msg in marks), (r.learner, marks)
        assert {name for _, name, _ in marks} == expected, r.learner
        for name in expected & set(checks.EXERCISES):
            assert f"↪ {name}: continuing with the reference solution" in r.text(), (r.learner, name)
        summary = r.cells[-1]["outputs"]
        assert all(f"{name}: not attempted" in "".join(o.get("text", "") for o in summary) for name in expected)


def test_the_shared_cache_is_read_only_and_unchanged(rehearsal):
    before, after = rehearsal.cache_before, rehearsal.cache_after
    assert any(k.endswith(".sqlite3") for k in before), before  # the prepared cache holds the embeddings
    assert all(v == "ok" for k, v in before.items() if k.endswith(":integrity")), before
    assert after == before  # same files (none added), same bytes, integrity still "ok"


def test_the_hub_and_every_server_are_stopped(rehearsal):
    assert rehearsal.left == [], rehearsal.left
