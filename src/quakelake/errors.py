"""Expected failures: one exception base, so every entry point can say what went wrong in one line.

Every problem a user can act on derives from :class:`QuakeLakeError`. Two families tell the
command line which exit status to use (see ``quakelake --help``):

- :class:`BadInput` (exit status 2): the command, a file it names or the configuration is wrong;
  fixing the input fixes the run. Never retried by Prefect tasks.
- :class:`FailedWork` (exit status 1): the input is fine but the work could not be done
  (no waveforms in range, a service that did not answer, units that failed).

A message names the option the user typed (``-D/--dates``, not ``window``) and what to do.
This module imports nothing from QuakeLake, Prefect or the science stack.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path

EXIT_OK = 0
EXIT_FAILED_WORK = 1
EXIT_BAD_INPUT = 2


class QuakeLakeError(Exception):
    """An expected failure; its message is one line that says what is wrong and what to do."""

    exit_code = EXIT_FAILED_WORK


class BadInput(QuakeLakeError):
    """The command line, a file it names or the configuration is wrong (exit status 2)."""

    exit_code = EXIT_BAD_INPUT


class FailedWork(QuakeLakeError):
    """The input is valid but the work could not be done (exit status 1)."""

    exit_code = EXIT_FAILED_WORK


class ServiceUnreachable(FailedWork):
    """A service (FDSN data centre, Prefect API) did not answer."""


class PrefectUnreachable(ServiceUnreachable):
    """The Prefect API in ``PREFECT_API_URL`` (or the local QuakeLake server) did not answer."""


class FdsnUnreachable(ServiceUnreachable):
    """No FDSN client answered (connection failed, timed out, or refused the request)."""


def is_transient(exc: BaseException) -> bool:
    """Return True when retrying could help: never for a :class:`BadInput`, else yes.

    Used as the Prefect tasks' ``retry_condition_fn``: a missing folder or an unknown model is
    not worth 37 s of retries, a lost NFS mount or a dropped connection is.
    """
    return not isinstance(exc, BadInput)


def one_line(message: object) -> str:
    """Return ``message`` as a single line (the lines of a multi-line message joined with "; ").

    >>> one_line("two problems:\\n  -p/--pwave: must be <= 1\\n  -s/--swave: must be <= 1")
    'two problems: -p/--pwave: must be <= 1; -s/--swave: must be <= 1'
    """
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    if not lines:
        return ""
    head, *rest = lines
    if not rest:
        return head
    sep = " " if head.endswith(":") else "; "
    return head + sep + "; ".join(rest)


_FULL = ("no space left on device", "database or disk is full", "disk quota exceeded")


def disk_full(exc: BaseException, where: str | os.PathLike | None = None) -> str:
    """Return the one line that says a disk is full (or "" when ``exc`` is not about that).

    The exception chain is searched for ENOSPC/EDQUOT or the words DuckDB and SQLite use (a
    commit that fails on a full disk surfaces as a DuckDB ``TransactionException``). The line
    names the disk (the mount point of the file the message names, else ``where``), its free
    space, and what is safe: a commit is all or nothing, so what was committed before stays.
    """
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    texts = [str(e) for e in seen]
    errnos = {getattr(e, "errno", None) for e in seen}
    if not (
        errnos & {errno.ENOSPC, errno.EDQUOT} or any(f in t.lower() for t in texts for f in _FULL)
    ):
        return ""
    named = next((m.group(1) for t in texts if (m := re.search(r'"(/[^"]+)"', t))), None)
    path = Path(named or where or ".").absolute()
    mount = path
    while not mount.exists() or not os.path.ismount(mount):
        if mount.parent == mount:
            break
        mount = mount.parent
    try:
        free = f", {shutil.disk_usage(mount).free / 1e6:.1f} MB free"
    except OSError:
        free = ""
    return (
        f"the disk is full: {mount}{free} (writing {path}); nothing half-written is in the lake "
        "(a commit is all or nothing) and every unit committed before is safe; free space "
        "there, then run the same command again to resume"
    )


def short_error(exc: BaseException) -> str:
    """Return ``Type: first line of the message`` of ``exc``, at most 300 characters (for ledgers).

    >>> short_error(ValueError("bad record\\nat byte 512"))
    'ValueError: bad record'
    """
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"[:300]


# A name the user gives that becomes a file or folder name (weights, training sets, references):
# no separator, no leading dot or dash, so it can never leave the folder it is made in.
NAME_RULE = "letters, digits, '_', '+' and '-', starting with a letter or digit"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+-]{0,99}")
_DOTTED_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")


def name_problem(name: object, dots: bool = False) -> str | None:
    """Return why ``name`` cannot be a file name QuakeLake makes, or None when it can.

    ``dots`` allows '.' inside the name (never first, never ``..``), as reference names do.

    >>> name_problem("../../../evil")
    "'../../../evil' is not a plain name; use letters, digits, '_', '+' and '-', starting with a letter or digit"
    >>> name_problem("scsn") is None
    True
    """
    rule = NAME_RULE.replace("'_'", "'.', '_'") if dots else NAME_RULE
    pattern = _DOTTED_NAME if dots else _NAME
    if not isinstance(name, str) or not pattern.fullmatch(name) or ".." in name:
        return f"{name!r} is not a plain name; use {rule}"
    return None


def check_name(name: str, option: str = "--name", dots: bool = False) -> str:
    """Return ``name`` when it is a plain name (see :func:`name_problem`), else raise BadInput."""
    problem = name_problem(name, dots)
    if problem:
        raise BadInput(f"{option}: {problem}")
    return name
