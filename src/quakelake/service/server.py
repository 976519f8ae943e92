"""Which Prefect API the commands talk to, and a local Prefect server that outlives one command.

Every flow run needs a Prefect API. Without one, Prefect starts a temporary server for each
command (about 10-15 s on a small machine) and throws it away with its flow runs. QuakeLake
resolves the API in this order, before Prefect is imported:

1. ``PREFECT_API_URL`` when set (an observatory's server, Prefect Cloud): used as it is; a
   server that does not answer is an ``error:`` before any work starts.
2. The local server started by ``quakelake server start`` (its address is kept in
   ``$PREFECT_HOME/quakelake-server.json``): flow runs, logs and artifacts stay visible in its
   UI, and commands start in a fraction of a second. ``quakelake server stop`` ends it.
3. Otherwise Prefect's own temporary server, as Prefect does by default (slow, nothing kept).

No Prefect import here: the address must be settled before Prefect reads its settings.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from quakelake.errors import BadInput, FailedWork, PrefectUnreachable

DEFAULT_PORT = 4200
HEALTH_TIMEOUT_S = 2.0


def prefect_home() -> Path:
    """Return Prefect's home folder (``$PREFECT_HOME`` or ``~/.prefect``)."""
    return Path(os.environ.get("PREFECT_HOME", Path.home() / ".prefect")).expanduser()


def state_file() -> Path:
    """Return the file that holds the local server's address and process id."""
    return prefect_home() / "quakelake-server.json"


def log_file() -> Path:
    """Return the local server's log file."""
    return prefect_home() / "quakelake-server.log"


def answers(api_url: str, timeout: float = HEALTH_TIMEOUT_S) -> str:
    """Return "" when the Prefect API at ``api_url`` answers its health check, else why not."""
    url = api_url.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (http(s) only)
            return "" if resp.status == 200 else f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__


def local_server() -> dict | None:
    """Return the running local server's record (``api_url``, ``pid``, ``port``), None when none runs."""
    try:
        record = json.loads(state_file().read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or "api_url" not in record:
        return None
    return record if not answers(record["api_url"], timeout=1.0) else None


def resolve_api() -> str:
    """Point Prefect at the API the commands use and return a word for it (``configured``, ``local``, ``temporary``).

    Raises:
        PrefectUnreachable: ``PREFECT_API_URL`` is set but nothing answers there.
    """
    url = os.environ.get("PREFECT_API_URL")
    if url:
        why = answers(url)
        if why:
            raise PrefectUnreachable(
                f"the Prefect API at PREFECT_API_URL={url} did not answer ({why}); start that server, "
                "or unset PREFECT_API_URL to use the local one (quakelake server start)"
            )
        return "configured"
    record = local_server()
    if record is not None:
        os.environ["PREFECT_API_URL"] = record["api_url"]
        reread_prefect_settings()
        return "local"
    return "temporary"


def reread_prefect_settings() -> None:
    """Make an already imported Prefect read its settings and logging set-up from the environment.

    Prefect reads its settings when it is imported. A command imports it after settling the API
    and log levels, except in a fork of the warm process (:mod:`quakelake.cli.warm_start`), which
    imported it before the command began: there the settings are read again. Nothing is imported
    here.
    """
    if "prefect.context" not in sys.modules:
        return
    from prefect.context import refresh_global_settings_context

    refresh_global_settings_context()
    if "prefect.logging.configuration" in sys.modules:
        from prefect.logging.configuration import setup_logging

        setup_logging(incremental=False)


def warm_record_file() -> Path:
    """Return the file that holds the warm Dask cluster's address (:mod:`quakelake.service.warm`)."""
    return prefect_home() / "quakelake-workers.json"


#: Environment the warm workers were started with that must equal a command's to use them.
WARM_ENV = ("SEISBENCH_CACHE_ROOT", "CUDA_VISIBLE_DEVICES")


def code_fingerprint() -> str:
    """Return a fingerprint of the QuakeLake code this interpreter runs (its files' sizes and times).

    Warm workers keep the modules they imported: after an upgrade or an edit their code is no
    longer the command's, and a submission would fail to unpickle in their scheduler. Stat calls
    only (~150 files, about a millisecond).
    """
    import hashlib

    root = Path(__file__).resolve().parents[1]  # the quakelake package, not only service/
    digest = hashlib.sha256(sys.executable.encode())
    for path in sorted(root.rglob("*.py")):
        st = path.stat()
        digest.update(f"{path.relative_to(root)}:{st.st_size}:{st.st_mtime_ns};".encode())
    return digest.hexdigest()[:16]


def start(
    port: int = DEFAULT_PORT,
    timeout: float = 180.0,
    workers: int = 0,
    threads: int = 1,
    warm: bool = True,
) -> dict:
    """Start a local Prefect server on 127.0.0.1:``port`` in the background and return its record.

    With ``workers`` > 0 a warm Dask cluster of that many worker processes (``threads`` threads
    each, the picking stack loaded) starts next to it (:mod:`quakelake.service.warm`); its scheduler
    address is in the record as ``dask_address``. With ``warm`` the warm process that commands
    fork from starts too (:mod:`quakelake.cli.warm_start`); its process id is ``warm_pid``.

    Raises:
        BadInput: the port is taken by something else.
        FailedWork: the server did not answer within ``timeout`` seconds (see its log file).
    """
    running = local_server()
    if running is not None:
        if workers and not running.get("dask_address"):
            running = _start_workers(running, workers, threads, timeout)
        if warm and not runs_warm_start(running):
            running = _start_warm(running, timeout)
        return running
    api_url = f"http://127.0.0.1:{port}/api"
    if not answers(api_url, timeout=1.0):
        raise BadInput(
            f"--port: a Prefect server already answers at {api_url}; use it with "
            f"export PREFECT_API_URL={api_url}, or pick another --port"
        )
    home = prefect_home()
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    env.pop("PREFECT_API_URL", None)
    prefect = Path(sys.executable).with_name("prefect")
    command = [str(prefect)] if prefect.is_file() else [sys.executable, "-m", "prefect"]
    command += ["server", "start", "--host", "127.0.0.1", "--port", str(port)]
    proc = _spawn(
        command,
        env,
        log_file(),
        lambda: not answers(api_url, timeout=1.0),
        timeout,
        f"the Prefect server on port {port}",
    )
    record = {"api_url": api_url, "pid": proc.pid, "port": port, "log": str(log_file())}
    state_file().write_text(json.dumps(record))
    if workers:
        record = _start_workers(record, workers, threads, timeout)
    if warm:
        record = _start_warm(record, timeout)
    return record


#: The module of the warm process that commands fork from.
WARM_MODULE = "quakelake.cli.warm_start"


def warm_start_record() -> Path:
    """Return the file that holds the warm process's socket (:mod:`quakelake.cli.warm_start`)."""
    return prefect_home() / "quakelake-warm-start.json"


def _start_warm(record: dict, timeout: float) -> dict:
    """Start the warm process for the server of ``record``; return the record with its process id.

    It is started with this command's environment: the commands whose environment equals it
    run in its forks (the others on their own).

    Raises:
        FailedWork: it was not ready within ``timeout`` seconds (see its log file).
    """
    out = warm_start_record()
    out.unlink(missing_ok=True)
    command = [sys.executable, "-m", WARM_MODULE, "--record", str(out)]
    log = prefect_home() / "quakelake-warm-start.log"
    proc = _spawn(command, dict(os.environ), log, out.is_file, timeout, "the warm process")
    record = {**record, "warm_pid": proc.pid, "warm_log": str(log)}
    state_file().write_text(json.dumps(record))
    return record


def _start_workers(record: dict, workers: int, threads: int, timeout: float) -> dict:
    """Start the warm Dask cluster for the server of ``record``; return the record with its address.

    Raises:
        FailedWork: the cluster did not come up within ``timeout`` seconds (see its log file).
    """
    out = warm_record_file()
    out.unlink(missing_ok=True)
    env = {**os.environ, "PREFECT_API_URL": record["api_url"], "DO_NOT_TRACK": "1"}
    command = [sys.executable, "-m", "quakelake.service.warm", "--workers", str(workers)]
    command += ["--threads", str(threads), "--record", str(out)]
    log = prefect_home() / "quakelake-workers.log"
    proc = _spawn(command, env, log, out.is_file, timeout, "--workers: the warm Dask workers")
    warm = json.loads(out.read_text())
    record = {
        **record,
        "dask_address": warm["address"],
        "dask_pid": proc.pid,
        "workers": warm["workers"],
        "threads": warm["threads"],
        "not_warmed": warm["not_warmed"],
        "env": {k: os.environ.get(k, "") for k in WARM_ENV},
        "code": code_fingerprint(),
    }
    state_file().write_text(json.dumps(record))
    return record


def _spawn(
    command: list[str],
    env: dict[str, str],
    log: Path,
    ready: Callable[[], bool],
    timeout: float,
    what: str,
) -> subprocess.Popen:
    """Start ``command`` detached (its own session, output to ``log``) and wait until ``ready()``.

    Raises:
        FailedWork: it exited or was not ready within ``timeout`` seconds (then it is ended).
    """
    with log.open("ab") as handle:
        proc = subprocess.Popen(  # noqa: S603 (our own interpreter and its prefect)
            command,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            _terminate(proc.pid)
            raise FailedWork(f"{what} did not start (exit status {proc.poll()}); see {log}")
        time.sleep(0.3)
    return proc


def warm_fit() -> tuple[str, str]:
    """Return (the warm cluster's address, "") when it fits this command, else ("", why not).

    It fits when this command talks to the same local server, sees the same :data:`WARM_ENV`
    (weights cache, GPUs) and runs the same code (:func:`code_fingerprint`) as the workers were
    started with. ``why`` is "" when no warm cluster runs, else one line for the user.
    """
    record = local_server()
    if not record or not record.get("dask_address"):
        return "", ""
    if os.environ.get("PREFECT_API_URL", record["api_url"]) != record["api_url"]:
        return "", ""  # another server's flow runs: its tasks must not report to ours
    if any(os.environ.get(k, "") != v for k, v in record.get("env", {}).items()):
        return "", ""  # e.g. another weights cache: picking here is what the user asked for
    if record.get("code") and record["code"] != code_fingerprint():
        return "", (
            "the warm workers run QuakeLake code older than this command's (updated since "
            "quakelake server start): picking in this command; restart them with quakelake "
            f"server stop, then quakelake server start --workers {record.get('workers', 1)}"
        )
    if not _alive(int(record.get("dask_pid", 0))):
        return "", ""
    host, _, port = record["dask_address"].removeprefix("tcp://").rpartition(":")
    try:
        import socket

        with socket.create_connection((host, int(port)), timeout=1.0):
            return record["dask_address"], ""
    except (OSError, ValueError):
        return "", ""


def stop() -> dict | None:
    """Stop the local server started by :func:`start`; return its record (None when none ran)."""
    try:
        record = json.loads(state_file().read_text())
    except (OSError, ValueError):
        return None
    pid = int(record.get("pid", 0))
    if _is_prefect_server(pid):  # never signal a process id reused by something else
        _terminate(pid)
    dask_pid = int(record.get("dask_pid", 0))
    if _runs(dask_pid, b"quakelake.service.warm"):
        _terminate(dask_pid)
    warm_pid = int(record.get("warm_pid", 0))
    if _runs(warm_pid, WARM_MODULE.encode()):
        _terminate(warm_pid)
    warm_start_record().unlink(missing_ok=True)
    warm_record_file().unlink(missing_ok=True)
    state_file().unlink(missing_ok=True)
    return record


def runs_warm_start(record: dict) -> bool:
    """Return True when the warm process of ``record`` (:func:`start`) runs."""
    return _runs(int(record.get("warm_pid", 0)), WARM_MODULE.encode())


def _alive(pid: int) -> bool:
    """Return True while ``pid`` runs (a zombie waiting to be reaped does not count)."""
    stat = Path(f"/proc/{pid}/stat")
    if stat.parent.parent.is_dir() and Path("/proc/self/stat").exists():
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _runs(pid: int, word: bytes) -> bool:
    """Return True when ``pid`` runs a command line holding ``word`` (where /proc tells)."""
    if pid <= 0 or not _alive(pid):
        return False
    try:
        return word in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return True  # no /proc (macOS): trust the state file
    except OSError:
        return False


def _is_prefect_server(pid: int) -> bool:
    """Return True when ``pid`` is a running ``prefect server start`` (where /proc tells)."""
    if pid <= 0 or not _alive(pid):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():
        return True  # no /proc (macOS): trust the state file
    try:
        words = cmdline.read_bytes().split(b"\0")
    except OSError:
        return False
    return any(w.endswith(b"prefect") for w in words) and b"server" in words


def _terminate(pid: int, wait: float = 20.0) -> None:
    """End the server's process group (the server and the services it spawned)."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + wait
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
