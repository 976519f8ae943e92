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


#: ``extra`` of a flow's log record that the command line prints again in its own summary (a
#: partial unit, a skipped model): the console shows it once, the Prefect UI still has the record.
SAID_AGAIN: dict[str, bool] = {"said_again": True}


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


def short_error(exc: BaseException) -> str:
    """Return ``Type: first line of the message`` of ``exc``, at most 300 characters (for ledgers).

    >>> short_error(ValueError("bad record\\nat byte 512"))
    'ValueError: bad record'
    """
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"[:300]
