"""A real JupyterHub on loopback for the workshop rehearsal (tests/workshop/test_hub_rehearsal.py and
benchmarks/bench_hub.py): learners who log in, start their servers through the hub's REST API and run
a notebook cell by cell through their own Jupyter server (sessions API + the kernel's websocket, as
JupyterLab does), and a teardown that leaves no process behind.

- JupyterHub (PyPI) with configurable-http-proxy (npm) on free 127.0.0.1 ports, the dummy
  authenticator (any password) and jupyterhub's SimpleLocalProcessSpawner, which creates no system
  user: each learner's server runs in a home folder of its own, as the hub's user. The shared cache
  is read-only for the learners as on a real hub: its files are 0444 and its folders 0555, and as
  root they belong to a numeric uid without a passwd entry (CACHE_OWNER) while each server starts
  with the capabilities that override file permissions (DAC_OVERRIDE, FOWNER, CHOWN, ...) dropped
  from its bounding set, so neither it nor its kernels can write there or chmod it back. (A uid per
  learner would isolate learners better, but the interpreter may live where only root can reach it,
  as pyenv's under /root does here.)
- Every process of a rehearsal (hub, proxy, servers, kernels) carries MARKER=<a random token> in its
  environment; `Hub.stop` stops the servers through the API, the hub with SIGTERM, then kills
  whatever still carries the token (each process group, then each process) and returns what was left.
- Timeouts on every wait: nothing here blocks for longer than the deadline it was given.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

MARKER = "CLIP_LAB_HUB_REHEARSAL"
CACHE_OWNER = 47100  # as root: the shared cache's owner, a uid without a passwd entry (no user is created)
# capabilities a learner's server must not have: chown, dac_override, dac_read_search, fowner, fsetid,
# setgid, setuid, linux_immutable, sys_admin (the learners then obey file permissions like anyone else)
DROPPED_CAPS = (0, 1, 2, 3, 4, 6, 7, 9, 21)
VENV_BIN = Path(sys.executable).parent


class HubError(RuntimeError):
    pass


def tools_missing() -> list[str]:
    """What the rehearsal needs and this machine lacks, each with its install line."""
    missing = []
    try:
        import jupyterhub  # noqa: F401
    except ImportError:
        missing.append("jupyterhub: pip install -e '.[dev]'")
    if not shutil.which("configurable-http-proxy"):
        missing.append("configurable-http-proxy: npm install -g configurable-http-proxy@4 (make hub-proxy)")
    if not (VENV_BIN / "jupyterhub-singleuser").exists():
        missing.append(f"jupyterhub-singleuser in {VENV_BIN}: pip install -e '.[dev]'")
    return missing


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1 (bound together, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# -- processes ------------------------------------------------------------------------------------

def marked_pids(token: str) -> list[int]:
    """Every live process (not this one) whose environment carries MARKER=token."""
    needle = f"{MARKER}={token}".encode()
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:  # gone, or not ours to read
            continue
        if needle in env:
            out.append(int(entry.name))
    return out


def _describe(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f"{pid}: " + f.read().replace(b"\0", b" ").decode(errors="replace")[:160]
    except OSError:
        return f"{pid}: (gone)"


def kill_marked(token: str, grace: float = 5.0) -> list[str]:
    """SIGTERM, then SIGKILL, every marked process and its process group -> what is still alive."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        pids = marked_pids(token)
        if not pids:
            return []
        for pid in pids:
            try:
                pgid = os.getpgid(pid)
                if pgid != os.getpgid(0):
                    os.killpg(pgid, sig)
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and marked_pids(token):
            time.sleep(0.1)
    return [_describe(p) for p in marked_pids(token)]


# -- the hub --------------------------------------------------------------------------------------

_CONFIG = '''
import os
from jupyterhub.spawner import SimpleLocalProcessSpawner

SETTINGS = {settings!r}


class LearnerSpawner(SimpleLocalProcessSpawner):
    """SimpleLocalProcessSpawner whose servers start in the home folder the rehearsal made for them
    and, as root, without the capabilities that override file permissions (see tests/workshop/_hub.py)."""

    def make_preexec_fn(self, name):
        home = self.home_dir
        drop = SETTINGS["dropped_caps"]

        def preexec():
            if drop:
                import ctypes
                libc = ctypes.CDLL(None, use_errno=True)
                for cap in drop:
                    if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP: gone after the exec
                        raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")
            os.chdir(home)

        return preexec


c = get_config()  # noqa: F821
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = SETTINGS["port"]
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = SETTINGS["hub_port"]
c.JupyterHub.db_url = "sqlite:///" + os.path.join(SETTINGS["dir"], "jupyterhub.sqlite")
c.JupyterHub.cookie_secret_file = os.path.join(SETTINGS["dir"], "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = os.path.join(SETTINGS["dir"], "jupyterhub.pid")
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True
c.ConfigurableHTTPProxy.command = [SETTINGS["proxy"]]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:%d" % SETTINGS["proxy_api_port"]
c.ConfigurableHTTPProxy.pid_file = os.path.join(SETTINGS["dir"], "jupyterhub-proxy.pid")
c.JupyterHub.authenticator_class = "dummy"
c.JupyterHub.spawner_class = LearnerSpawner
c.SimpleLocalProcessSpawner.home_dir_template = os.path.join(SETTINGS["homes"], "{{username}}")
c.Spawner.cmd = [SETTINGS["singleuser"]]
c.Spawner.args = SETTINGS["args"]
c.Spawner.default_url = "/lab"
c.Spawner.environment = SETTINGS["environment"]
c.Spawner.start_timeout = SETTINGS["timeout"]
c.Spawner.http_timeout = SETTINGS["timeout"]
c.JupyterHub.services = [{{"name": "rehearsal", "api_token": SETTINGS["admin_token"]}}]
c.JupyterHub.load_roles = [{{"name": "rehearsal", "services": ["rehearsal"],
                             "scopes": ["admin:users", "admin:servers", "tokens", "list:users", "read:users"]}}]
'''


@dataclass
class Hub:
    """One JupyterHub on loopback. Use as a context manager, or call start() and stop()."""
    root: Path                      # a folder of its own (hub state, the learners' homes, logs)
    learners: list[str]
    environment: dict = field(default_factory=dict)  # for every learner's server and kernel
    timeout: float = 120.0          # a spawn, a login, the hub's start
    token: str = field(default_factory=lambda: secrets.token_hex(8))
    proc: subprocess.Popen | None = None

    def __post_init__(self):
        self.root = Path(self.root)
        self.admin_token = secrets.token_hex(24)
        self.as_root = os.geteuid() == 0
        self.homes = self.root / "homes"
        self.log_path = self.root / "jupyterhub.log"

    # lifecycle
    def start(self) -> "Hub":
        missing = tools_missing()
        if missing:
            raise HubError("missing: " + "; ".join(missing))
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        self.homes.mkdir(exist_ok=True)
        os.chmod(self.homes, 0o755)
        for name in self.learners:
            home = self.homes / name
            home.mkdir(exist_ok=True)
            os.chmod(home, 0o700)
        for attempt in range(3):  # another process may take a free port before the hub binds it
            try:
                return self._start()
            except HubError:
                if self.proc is None or self.proc.poll() is None or attempt == 2:
                    raise
                kill_marked(self.token)  # a proxy the failed hub left
                self.proc = None

    def _start(self) -> "Hub":
        self.port, hub_port, api_port = free_ports(3)
        env = {**self.environment, MARKER: self.token}
        settings = dict(port=self.port, hub_port=hub_port, proxy_api_port=api_port, dir=str(self.root),
                        homes=str(self.homes), proxy=shutil.which("configurable-http-proxy"),
                        singleuser=str(VENV_BIN / "jupyterhub-singleuser"), environment=env,
                        timeout=int(self.timeout), admin_token=self.admin_token,
                        dropped_caps=list(DROPPED_CAPS) if self.as_root else [],
                        args=["--ServerApp.allow_root=True"] if self.as_root else [])
        config = self.root / "jupyterhub_config.py"
        config.write_text(textwrap.dedent(_CONFIG.format(settings=settings)))
        hub_env = {**os.environ, MARKER: self.token}
        hub_env["PATH"] = f"{VENV_BIN}{os.pathsep}{hub_env.get('PATH', '')}"
        if getattr(self, "_log", None):
            self._log.close()
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(VENV_BIN / "jupyterhub"), "-f", str(config)], cwd=self.root,
                                     env=hub_env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + self.timeout
        while True:
            if self.proc.poll() is not None:
                raise HubError(f"jupyterhub exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                if self.api("GET", "/hub/api/", timeout=5).status_code == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise HubError(f"jupyterhub did not answer within {self.timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.3)
        return self

    def stop(self) -> list[str]:
        """Stop every server and the hub, kill what remains -> the processes still alive (none)."""
        if self.proc is not None and self.proc.poll() is None:
            for name in self.learners:  # the hub asks each server to shut down its kernels
                try:
                    self.api("DELETE", f"/hub/api/users/{name}/server", timeout=10)
                except OSError:
                    pass
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and self._servers_running():
                time.sleep(0.3)
            self.proc.send_signal(signal.SIGTERM)  # the hub stops the proxy and any server left
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        left = kill_marked(self.token)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                left.append(f"{self.proc.pid}: jupyterhub did not exit")
        if getattr(self, "_log", None):
            self._log.close()
        return left

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        left = self.stop()
        if left and exc[0] is None:
            raise HubError(f"processes left after the hub stopped: {left}")

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    # REST
    def api(self, method: str, path: str, token: str | None = None, timeout: float = 30, **kw):
        import requests
        headers = {"Authorization": f"token {token or self.admin_token}", **kw.pop("headers", {})}
        try:
            return requests.request(method, self.url + path, headers=headers, timeout=timeout, **kw)
        except requests.RequestException as e:
            raise OSError(f"{method} {path}: {e}") from e

    def _servers_running(self) -> bool:
        try:
            r = self.api("GET", "/hub/api/users", timeout=5)
            return r.status_code == 200 and any(u.get("servers") for u in r.json())
        except (OSError, ValueError):
            return False

    def login(self, name: str, password: str = "rehearsal") -> str:
        """Log in through the hub's login form (cookies and the form's _xsrf), then ask the hub for a
        token with the learner's own login -> the token."""
        import requests
        s = requests.Session()
        page = s.get(f"{self.url}/hub/login", timeout=self.timeout)
        m = re.search(r'name="_xsrf"\s+value="([^"]+)"', page.text)
        form = {"username": name, "password": password, **({"_xsrf": m.group(1)} if m else {})}
        r = s.post(f"{self.url}/hub/login?next=", data=form, allow_redirects=False, timeout=self.timeout)
        if r.status_code != 302:
            raise HubError(f"{name} could not log in: HTTP {r.status_code}")
        xsrf = s.cookies.get("_xsrf", path="/hub/") or s.cookies.get("_xsrf")
        r = s.post(f"{self.url}/hub/api/users/{name}/tokens", json={"note": "rehearsal", "expires_in": 3600},
                   headers={"X-XSRFToken": xsrf} if xsrf else {}, timeout=self.timeout)
        if r.status_code != 201:
            raise HubError(f"{name} logged in but got no token: HTTP {r.status_code} {r.text[:200]}")
        return r.json()["token"]

    def spawn(self, name: str, token: str) -> float:
        """Start the learner's server through the API and wait until it answers -> seconds."""
        start = time.monotonic()
        r = self.api("POST", f"/hub/api/users/{name}/server", token=token, timeout=self.timeout)
        if r.status_code not in (201, 202) and not (r.status_code == 400 and "already running" in r.text):
            raise HubError(f"{name}: spawn refused: HTTP {r.status_code} {r.text[:200]}")
        deadline = start + self.timeout
        while time.monotonic() < deadline:
            u = self.api("GET", f"/hub/api/users/{name}", token=token, timeout=10).json()
            server = (u.get("servers") or {}).get("", {})
            if server.get("ready"):
                if self.api("GET", f"/user/{name}/api/status", token=token, timeout=10).status_code == 200:
                    return time.monotonic() - start
            elif not server.get("pending") and time.monotonic() - start > 5:
                raise HubError(f"{name}: the server stopped while starting:\n{self.log_tail()}")
            time.sleep(0.3)
        raise HubError(f"{name}: the server was not ready within {self.timeout:.0f} s:\n{self.log_tail()}")


# -- a learner running a notebook through their server --------------------------------------------

def _decode(frame) -> dict:
    """A kernel websocket message: JSON text, or the binary frame of a message with buffers
    (uint32 count, uint32 offsets, the JSON, the buffers)."""
    if isinstance(frame, str):
        return json.loads(frame)
    n = struct.unpack("!I", frame[:4])[0]
    offsets = list(struct.unpack(f"!{n}I", frame[4:4 + 4 * n])) + [len(frame)]
    return json.loads(frame[offsets[0]:offsets[1]].decode())


def _output(msg: dict) -> dict | None:
    """The nbformat output of one iopub message (None for what is not an output)."""
    t, c = msg["msg_type"], msg["content"]
    if t == "stream":
        return {"output_type": "stream", "name": c["name"], "text": c["text"]}
    if t in ("display_data", "execute_result"):
        out = {"output_type": t, "data": c.get("data", {}), "metadata": c.get("metadata", {})}
        if t == "execute_result":
            out["execution_count"] = c.get("execution_count")
        return out
    if t == "error":
        return {"output_type": "error", "ename": c["ename"], "evalue": c["evalue"], "traceback": c["traceback"]}
    return None


@dataclass
class Run:
    learner: str
    spawn_s: float = 0.0
    kernel_s: float = 0.0       # from asking for a session to the kernel's first idle
    wall_s: float = 0.0         # from asking for a session to the last cell's reply: what the learner waits
    cpu_s: float = 0.0          # the kernel's CPU seconds (user + system, its threads and waited-for children)
    rss_mb: float = 0.0         # the kernel's peak resident memory
    threads: str = ""           # the kernel's thread policy (lab.threads.settings()) and torch's thread count
    cells: list = field(default_factory=list)  # per code cell: {"source", "outputs", "status", "seconds"}
    error: str | None = None

    def outputs(self):
        return [o for c in self.cells for o in c["outputs"]]

    def text(self) -> str:
        return "".join(o.get("text", "") for o in self.outputs())


def run_notebook(hub: Hub, name: str, token: str, nb: dict, nb_name: str, kernel: str | None = None,
                 cell_timeout: float = 180.0, deadline: float | None = None, barrier=None) -> Run:
    """Upload `nb` to the learner's server, open a session on it (as JupyterLab does), run every code
    cell in order through the kernel's websocket and shut the session down -> Run. An error output or
    a non-ok reply stops the run there (as "Run All" does); `Run.error` says why a run did not finish."""
    import websocket
    run = Run(name)
    base = f"/user/{name}/api"
    r = hub.api("PUT", f"{base}/contents/{nb_name}", token=token, json={"type": "notebook", "format": "json",
                                                                         "content": nb})
    if r.status_code not in (200, 201):
        raise HubError(f"{name}: upload failed: HTTP {r.status_code} {r.text[:200]}")
    if kernel is None:
        specs = hub.api("GET", f"{base}/kernelspecs", token=token).json()["kernelspecs"]
        wanted = nb.get("metadata", {}).get("kernelspec", {}).get("name")
        kernel = wanted if wanted in specs else "python3"
    if barrier is not None:
        barrier.wait(timeout=hub.timeout)
    start = time.monotonic()
    deadline = deadline or start + 600
    r = hub.api("POST", f"{base}/sessions", token=token, timeout=hub.timeout,
                json={"path": nb_name, "name": nb_name, "type": "notebook", "kernel": {"name": kernel}})
    if r.status_code != 201:
        raise HubError(f"{name}: no session: HTTP {r.status_code} {r.text[:200]}")
    session = r.json()
    kid, sid = session["kernel"]["id"], uuid.uuid4().hex
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{hub.port}{base}/kernels/{kid}/channels?session_id={sid}",
        header=[f"Authorization: token {token}"], timeout=min(cell_timeout, 30),
        # a learner's browser checks UTF-8 in native code, on the learner's laptop; websocket-client does it
        # byte by byte in Python (most of this driver's CPU: the widgets' 5 MB states), on the hub's cores
        skip_utf8_validation=True)
    try:
        def request(msg_type: str, content: dict) -> str:
            mid = uuid.uuid4().hex
            ws.send(json.dumps({"header": {"msg_id": mid, "msg_type": msg_type, "session": sid, "username": name,
                                           "date": "", "version": "5.3"},
                                "parent_header": {}, "metadata": {}, "content": content, "channel": "shell",
                                "buffers": []}))
            return mid

        def collect(mid: str, limit: float, outputs: list | None = None) -> dict:
            """iopub outputs of `mid` until it is idle and its reply has come -> the reply's content."""
            reply, idle, end = None, False, min(time.monotonic() + limit, deadline)
            while reply is None or not idle:
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no reply within {limit:.0f} s")
                ws.settimeout(min(left, 30))
                try:
                    msg = _decode(ws.recv())
                except websocket.WebSocketTimeoutException:
                    continue
                if msg.get("parent_header", {}).get("msg_id") != mid:
                    continue
                if msg["channel"] == "shell":
                    reply = msg["content"]
                elif msg["channel"] == "iopub":
                    if msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle":
                        idle = True
                    elif outputs is not None:
                        if msg["msg_type"] == "clear_output":
                            outputs.clear()
                        elif (out := _output(msg)) is not None:
                            outputs.append(out)
            return reply

        collect(request("kernel_info_request", {}), hub.timeout)
        run.kernel_s = time.monotonic() - start
        for cell in nb["cells"]:
            if cell["cell_type"] != "code":
                continue
            source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            outputs, t = [], time.monotonic()
            mid = request("execute_request", {"code": source, "silent": False, "store_history": True,
                                              "user_expressions": {}, "allow_stdin": False, "stop_on_error": True})
            try:
                reply = collect(mid, cell_timeout, outputs)
            except TimeoutError as e:
                run.cells.append({"source": source, "outputs": outputs, "status": "timeout",
                                  "seconds": time.monotonic() - t})
                run.error = f"cell {len(run.cells) - 1}: {e}"
                break
            run.cells.append({"source": source, "outputs": outputs, "status": reply.get("status"),
                              "seconds": time.monotonic() - t})
            if reply.get("status") != "ok":
                run.error = f"cell {len(run.cells) - 1}: {reply.get('ename')}: {reply.get('evalue')}"
                break
        run.wall_s = time.monotonic() - start
        usage = "(lambda r, c: (r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime, r.ru_maxrss / 1024))" \
                "(__import__('resource').getrusage(0), __import__('resource').getrusage(-1))"
        threads = "(lambda s: f\"{s['policy']} {s['threads'] or ''}\".strip())" \
                  "(__import__('lab.threads', fromlist=['settings']).settings()) + " \
                  "f\", torch {__import__('torch').get_num_threads()}\""
        mid = request("execute_request", {"code": "", "silent": True, "store_history": False, "allow_stdin": False,
                                          "user_expressions": {"usage": usage, "threads": threads}})
        try:
            values = collect(mid, 30)["user_expressions"]
            run.cpu_s, run.rss_mb = (float(v) for v in values["usage"]["data"]["text/plain"].strip("()").split(","))
            run.threads = values["threads"]["data"]["text/plain"].strip("'\"")
        except (TimeoutError, KeyError, ValueError):
            pass
    finally:
        ws.close()
        hub.api("DELETE", f"{base}/sessions/{session['id']}", token=token, timeout=30)  # shuts the kernel down
    return run


def rehearse(hub: Hub, names: list[str], nb: dict, nb_name: str, limit: float = 300.0, **kw) -> list[Run]:
    """Every learner in `names` at once: log in, start the server, upload the notebook, then (all
    together, as a room pressing "Run All") run it -> one Run each, within `limit` seconds in all."""
    results: dict[str, Run] = {}
    barrier = threading.Barrier(len(names))
    deadline = time.monotonic() + limit

    def learner(name: str):
        run = Run(name)
        try:
            token = hub.login(name)
            spawn_s = hub.spawn(name, token)
            run = run_notebook(hub, name, token, nb, nb_name, barrier=barrier, deadline=deadline, **kw)
            run.spawn_s = spawn_s
        except BaseException as e:  # noqa: BLE001  reported per learner
            barrier.abort()
            run.error = f"{type(e).__name__}: {e}"
        results[name] = run

    threads = [threading.Thread(target=learner, args=(n,), daemon=True, name=f"learner-{n}") for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(1.0, deadline + 60 - time.monotonic()))
    return [results.get(n) or Run(n, error=f"did not finish within {limit:.0f} s") for n in names]


# -- the shared read-only cache -------------------------------------------------------------------

def read_only_copy(zip_path: Path, folder: Path) -> Path:
    """Unzip `zip_path` into `folder`: files 0444, folders 0555, owned by CACHE_OWNER as root."""
    import zipfile
    folder.mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(folder)
    for p in [*sorted(folder.rglob("*"), reverse=True), folder]:
        if os.geteuid() == 0:
            os.chown(p, CACHE_OWNER, CACHE_OWNER)
        os.chmod(p, 0o555 if p.is_dir() else 0o444)
    return folder


def cache_state(folder: Path) -> dict:
    """{relative path: sha256} of every file under `folder`, plus each SQLite file's integrity check
    (read through an immutable URI: the check itself writes nothing)."""
    import hashlib
    import sqlite3
    state = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            state[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
            if p.suffix == ".sqlite3":
                conn = sqlite3.connect(f"{p.resolve().as_uri()}?immutable=1", uri=True)
                try:
                    state[f"{p.relative_to(folder)}:integrity"] = conn.execute("PRAGMA integrity_check").fetchone()[0]
                finally:
                    conn.close()
    return state


def make_root() -> Path:
    """A temporary folder of the rehearsal's own (homes, hub state, the cache copy)."""
    root = Path(tempfile.mkdtemp(prefix="clip-lab-hub-"))
    os.chmod(root, 0o755)
    return root


def remove_tree(root: Path):
    """Remove a rehearsal's folder, read-only parts included."""
    for dirpath, dirnames, _ in os.walk(root):
        for d in dirnames:
            try:
                os.chmod(os.path.join(dirpath, d), 0o755)
            except OSError:
                pass
    shutil.rmtree(root, ignore_errors=True)


# -- the whole rehearsal (the test and the benchmark) ---------------------------------------------

def student_and_cache(folder: Path, module: str = "M1") -> tuple[str, dict, Path]:
    """The learner edition of one module and the cache.zip that `workshop prepare` makes for it
    -> (notebook file name, notebook, zip). Kernels see no GPU, as in tests/workshop/test_workshop.py."""
    from lab.workshop import build as wb
    from lab.workshop import room
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    try:
        wb.build(folder / "editions", modules=[module], execute_solutions=False, progress=False)
        path = next((folder / "editions" / "student").glob("*.ipynb"))
        room.prepare(folder / "cache.zip", modules=[module])
    finally:
        if before is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = before
    return path.name, json.loads(path.read_text(encoding="utf-8")), folder / "cache.zip"


THREAD_VARIABLES = ("LAB_THREADS", "LAB_THREAD_POLICY", "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS",
                    "OPENBLAS_NUM_THREADS")


def learner_environment(cache: Path, extra: dict | None = None) -> dict:
    """What every learner's server and kernel get besides the hub's own variables: the shared cache,
    no GPU, and the thread settings of this process if any (the hub's spawner passes on only a few
    variables; without these the lab's default policy, `fair`, sizes each kernel's threads)."""
    env = {"LAB_CACHE_DIR": str(cache), "CUDA_VISIBLE_DEVICES": ""}
    env.update({k: os.environ[k] for k in THREAD_VARIABLES if k in os.environ})
    env.update(extra or {})
    return env


@dataclass
class Rehearsal:
    lone: list          # the lone learner's runs: before the room, and after it
    crowd: list         # the room: every learner at once
    cache_before: dict
    cache_after: dict
    left: list          # processes alive after the hub stopped (none)
    seconds: float      # the whole rehearsal, hub start to stop
    log: str = ""

    @property
    def lone_s(self) -> float:
        return sum(r.wall_s for r in self.lone) / len(self.lone)

    @property
    def slowest_s(self) -> float:
        return max((r.wall_s for r in self.crowd), default=0.0)

    @property
    def floor_s(self) -> float:
        return (len(self.crowd) / 2 + 1) * self.lone_s

    def table(self) -> str:
        rows = [f"{'learner':<10}{'spawn s':>9}{'kernel s':>10}{'wall s':>9}{'x lone':>8}{'CPU s':>8}{'peak MB':>9}"
                f"  {'threads':<18}result"]
        for r in self.lone[:1] + self.crowd + self.lone[1:]:
            rows.append(f"{r.learner:<10}{r.spawn_s:>9.1f}{r.kernel_s:>10.1f}{r.wall_s:>9.1f}"
                        f"{r.wall_s / self.lone_s if self.lone_s else 0:>8.2f}{r.cpu_s:>8.1f}{r.rss_mb:>9.0f}  "
                        f"{r.threads or '?':<18}{r.error or f'{len(r.cells)} cells'}")
        n = len(self.crowd)
        rows.append(f"lone learner {self.lone_s:.1f} s (runs {', '.join(f'{r.wall_s:.1f}' for r in self.lone)}); "
                    f"{n} learners at once: slowest {self.slowest_s:.1f} s = {self.slowest_s / self.lone_s:.2f} x lone, "
                    f"floor ({n} / 2 + 1) x lone = {self.floor_s:.1f} s; rehearsal {self.seconds:.0f} s")
        return "\n".join(rows)


def rehearse_room(hub: Hub, learners: list[str], nb_name: str, nb: dict, cache: Path, limit: float = 240.0,
                  lone: str = "solo") -> Rehearsal:
    """Start `hub` (whose learners are `lone` and `learners`), run the notebook for the lone learner,
    then for every learner at once, then for the lone learner again; stop the hub (always)."""
    before = cache_state(cache)
    start = time.monotonic()
    lone_runs, crowd = [], []
    try:
        hub.start()
        lone_runs += rehearse(hub, [lone], nb, nb_name, limit=limit)
        if not lone_runs[0].error:
            crowd = rehearse(hub, learners, nb, nb_name, limit=limit)
            lone_runs += rehearse(hub, [lone], nb, nb_name, limit=limit)
    finally:
        log = hub.log_tail(20000)
        left = hub.stop()
    return Rehearsal(lone_runs, crowd, before, cache_state(cache), left, time.monotonic() - start, log)
