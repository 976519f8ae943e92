"""The command's side of warm start (:mod:`quakelake.cli.warm_start`): hand the command over.

The ``quakelake`` and ``picker`` entry points call :func:`hand_off` once the options parse,
before any heavy import. Standard library only (plus the server's record path), so that a
command run on its own pays nothing for it; the warm process imports this module for the
message format and the checks that both sides share.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys

from quakelake.service.server import warm_start_record

#: Environment names that may differ between the warm process and a command: the shell's own
#: book-keeping and the terminal's, which no imported module reads. The fork runs with the
#: command's whole environment.
IGNORED_ENV = frozenset(
    {
        "_",
        "PWD",
        "OLDPWD",
        "SHLVL",
        "COLUMNS",
        "LINES",
        "TERM",
        "COLORTERM",
        "TERM_PROGRAM",
        "TERM_PROGRAM_VERSION",
        "SSH_CLIENT",
        "SSH_CONNECTION",
        "SSH_TTY",
        "SSH_AUTH_SOCK",
        "WINDOWID",
        "TMUX",
        "TMUX_PANE",
        "STY",
        "PS1",
        "OLDPROMPT",
        "PATH",  # read by the command's subprocesses, which get the command's own
        "VIRTUAL_ENV",  # the interpreter is compared instead
        "VIRTUAL_ENV_PROMPT",
    }
)
#: Prefixes of more such names (pyenv's shims set them per shell).
IGNORED_PREFIXES = ("PYENV", "_PYENV")
#: Set to 1 to run one command in its own process whatever runs.
COLD_ENV = "QUAKELAKE_COLD_START"
#: Seconds a command waits for the warm process to take it (or refuse it) before running on its own.
ANSWER_TIMEOUT_S = 30.0
#: Every message is this length (network order) followed by that many bytes of JSON.
LENGTH = struct.Struct("!I")
_RLIMITS = (
    "RLIMIT_AS",
    "RLIMIT_DATA",
    "RLIMIT_FSIZE",
    "RLIMIT_NOFILE",
    "RLIMIT_CPU",
    "RLIMIT_NPROC",
)


def limits() -> dict[str, list[int]]:
    """Return this process's resource limits (soft, hard) that a fork must share to stand for it."""
    import resource

    return {
        name: list(resource.getrlimit(getattr(resource, name)))
        for name in _RLIMITS
        if hasattr(resource, name)
    }


def affinity() -> list[int]:
    """Return the CPUs this process may run on (a batch job's allocation), [] where unknown."""
    getter = getattr(os, "sched_getaffinity", None)
    return sorted(getter(0)) if getter is not None else []


def env_key(env: dict[str, str]) -> dict[str, str]:
    """Return ``env`` without the names that may differ (:data:`IGNORED_ENV`, :data:`IGNORED_PREFIXES`)."""
    return {
        k: v for k, v in env.items() if k not in IGNORED_ENV and not k.startswith(IGNORED_PREFIXES)
    }


def send_message(conn: socket.socket, message: dict) -> None:
    """Send ``message`` (JSON) on ``conn``."""
    data = json.dumps(message).encode()
    conn.sendall(LENGTH.pack(len(data)) + data)


def receive_message(conn: socket.socket) -> dict | None:
    """Return the next message on ``conn``, None when the other end closed it."""
    head = receive_exactly(conn, LENGTH.size)
    if head is None:
        return None
    data = receive_exactly(conn, LENGTH.unpack(head)[0])
    return None if data is None else json.loads(data)


def receive_exactly(conn: socket.socket, size: int) -> bytes | None:
    """Return the next ``size`` bytes on ``conn``, None when the other end closed it first."""
    data = bytearray()
    while len(data) < size:
        chunk = conn.recv(size - len(data))  # a signal handler's interruption is retried
        if not chunk:
            return None
        data += chunk
    return bytes(data)


# --- the command's side ----------------------------------------------------------------------


def hand_off(entry: str, argv: list[str], verbosity: int = 1) -> int | None:
    """Run ``entry argv`` in a fork of the warm process; return its exit status.

    None when no warm process fits this command (see the module's text): the caller runs it
    itself, as it always did. ``entry`` is ``quakelake`` or ``picker``. Signals that would end
    or interrupt the command are passed on to the fork's process group while it runs.
    """
    if os.environ.get(COLD_ENV, "") not in ("", "0") or not hasattr(socket, "send_fds"):
        return None
    try:
        record = json.loads(warm_start_record().read_text())
        path = record["socket"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if record.get("host") != socket.gethostname():
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
    except OSError:
        conn.close()
        return None
    with conn:
        try:
            cwd = os.getcwd()
        except OSError:  # a folder deleted under the shell: the command's own process says so
            return None
        fds = [fd for fd in (0, 1, 2) if _open_fd(fd)]
        request = {
            "entry": entry,
            "argv": argv,
            "env": dict(os.environ),
            "cwd": cwd,
            "umask": _umask(),
            "limits": limits(),
            "affinity": affinity(),
            "executable": sys.executable,
            "fds": fds,
        }
        data = json.dumps(request).encode()
        # A warm process that does not answer (stopped, swapped out) must not hang the command:
        # it runs on its own. Should the answer have come later, the fork started for it finds
        # this end closed and is ended at once (warm_start._wait).
        conn.settimeout(ANSWER_TIMEOUT_S)
        try:
            socket.send_fds(conn, [LENGTH.pack(len(data))], fds)
            conn.sendall(data)
            answer = receive_message(conn)
        except OSError:  # socket.timeout included
            return None
        if answer is None:
            return None
        conn.settimeout(None)
        if "refused" in answer:
            if answer.get("say") and verbosity > 0:
                print(f"warning: {answer['refused']}", file=sys.stderr)
            return None
        if verbosity > 1:
            print(
                f"note: running in pid {answer['pid']}, a fork of the warm process (pid "
                f"{record.get('pid')}) of quakelake server start",
                file=sys.stderr,
                flush=True,
            )
        return _relay(conn, int(answer["pid"]))


def _open_fd(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _relay(conn: socket.socket, pid: int) -> int:
    """Pass this process's signals on to the fork ``pid`` until it ends; return its exit status."""

    def forward(signum: int, _frame: object) -> None:
        try:
            os.killpg(pid, signum)
        except OSError:
            try:
                os.kill(pid, signum)
            except OSError:
                pass

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, forward)
    try:
        answer = receive_message(conn)  # interrupted by a forwarded signal: retried (PEP 475)
    except OSError:
        answer = None
    if answer is None:
        print(
            "error: the warm process that ran this command ended before it (quakelake server "
            "stop?); the units committed before are in the lake: run the same command again to "
            "finish (finished units are kept)",
            file=sys.stderr,
        )
        return 1
    if "signal" in answer:
        name = signal.Signals(int(answer["signal"])).name
        print(f"error: the command was ended by {name}", file=sys.stderr)
        return 128 + int(answer["signal"])
    return int(answer["exit"])
