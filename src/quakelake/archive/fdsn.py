"""FDSN web-service client handling: clients cached per process, EIDA tokens, requests with retries.

ObsPy's FDSN :class:`~obspy.clients.fdsn.Client` does the protocol; this module adds what a
long download needs around it: one client per data centre and process (authenticated with an
EIDA token where the centre has the service), a bound on requests in flight per centre,
retries of 5xx answers, timeouts and truncated bodies with exponential backoff and
``Retry-After``, and an overall deadline per request so a server that trickles bytes cannot
hold a unit.

Plain Python: no Prefect.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import http.client
import logging
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from obspy import UTCDateTime
from obspy.clients.fdsn import Client
from obspy.clients.fdsn.client import raise_on_error
from obspy.clients.fdsn.header import (
    FDSNBadGatewayException,
    FDSNException,
    FDSNInternalServerException,
    FDSNNoAuthenticationServiceException,
    FDSNNoDataException,
    FDSNNoServiceException,
    FDSNServiceUnavailableException,
    FDSNTimeoutException,
    FDSNTooManyRequestsException,
)

from quakelake.errors import BadInput, short_error
from quakelake.params.download import TOKEN_ENV, DownloadParams, FdsnClientSpec

log = logging.getLogger(__name__)


class TokenFileMissing(BadInput, FileNotFoundError):
    """The EIDA token file given with -K does not exist."""


def read_token(params: DownloadParams) -> str | None:
    """Return the EIDA token text from ``params.token_file`` or the ``QUAKELAKE_EIDA_TOKEN`` variable.

    The token is never logged and never stored in the lake or the ledger.

    Raises:
        TokenFileMissing: naming the token file when it does not exist (bad input).
    """
    if params.token_file is not None:
        path = Path(params.token_file).expanduser()
        if not path.is_file():
            raise TokenFileMissing(
                f"-K/--key: EIDA token file {path} does not exist; pass the file downloaded from "
                "the EIDA authentication service"
            )
        return path.read_text().strip() or None
    return os.environ.get(TOKEN_ENV) or None


_CLIENTS: dict[str, Client] = {}
_CLIENTS_LOCK = threading.Lock()
_SLOTS: dict[tuple[str, int], threading.BoundedSemaphore] = {}


def request_slot(name: str, limit: int) -> threading.BoundedSemaphore:
    """Return the semaphore bounding requests in flight to the data centre ``name`` (per process)."""
    with _CLIENTS_LOCK:
        return _SLOTS.setdefault((name, limit), threading.BoundedSemaphore(limit))


def fdsn_client(spec: FdsnClientSpec, timeout: float, token: str | None = None) -> Client:
    """Return an ObsPy FDSN client for ``spec``, cached per process.

    With a token the client authenticates through the centre's EIDA auth service; a centre
    without one (IRIS …) gets an anonymous client.

    Raises:
        FDSNException: when the centre's services cannot be discovered.
    """
    digest = hashlib.sha256(token.encode()).hexdigest() if token else ""
    key = f"{spec.model_dump_json()}|{timeout}|{digest}"
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
    if client is not None:
        return client
    kwargs: dict[str, Any] = {"timeout": timeout, "service_mappings": spec.service_mappings()}
    if token:
        try:
            client = Client(spec.url, eida_token=token, **kwargs)
        except FDSNNoAuthenticationServiceException:
            log.info("FDSN client %s has no EIDA authentication; using it anonymously", spec.name)
            client = Client(spec.url, **kwargs)
    else:
        client = Client(spec.url, **kwargs)
    with _CLIENTS_LOCK:
        _CLIENTS[key] = client
    return client


def is_no_data(exc: BaseException) -> bool:
    return isinstance(exc, FDSNNoDataException) or "HTTP code: 404" in str(exc)


def is_retryable(exc: BaseException) -> bool:
    if isinstance(
        exc,
        (
            FDSNTimeoutException,
            FDSNInternalServerException,
            FDSNBadGatewayException,
            FDSNServiceUnavailableException,
            FDSNTooManyRequestsException,
            TimeoutError,
            ConnectionError,
            http.client.IncompleteRead,
        ),
    ):
        return True
    text = str(exc)
    return isinstance(exc, FDSNException) and (
        "Unknown HTTP code: 5" in text or text.startswith("Unknown Error")
    )


def call_with_retries(func: Any, params: DownloadParams, what: str) -> Any:
    """Return ``func()``, retrying 5xx answers and timeouts with exponential backoff.

    Raises:
        FDSNException: the last error once retries are spent, or at once when not retryable
            (no data included).
    """
    attempt = 0
    while True:
        try:
            return func()
        except Exception as exc:
            if is_no_data(exc) or not is_retryable(exc) or attempt >= params.retries:
                raise
            delay = params.backoff * (2**attempt)
            retry_after = getattr(exc, "retry_after", None)
            if retry_after is not None:
                if retry_after > params.max_retry_after:
                    raise FDSNServiceUnavailableException(
                        f"{what}: the data centre asks to retry after {retry_after:.0f} s, more "
                        f"than max_retry_after={params.max_retry_after:.0f} s"
                    ) from exc
                delay = max(delay, retry_after)
            attempt += 1
            log.info(
                "%s: %s; retry %d/%d in %.1f s",
                what,
                short_error(exc),
                attempt,
                params.retries,
                delay,
            )
            time.sleep(delay)


def fdsn_list(values: list[str], location: bool = False) -> str:
    out = []
    for v in values:
        out.append("--" if location and v in ("", "--") else v)
    return ",".join(out)


class RequestDeadlineExceeded(FDSNException):
    """A response took longer than ``request_deadline`` seconds in all (a trickling server)."""


def _retry_after(value: str | None) -> float | None:
    """Return the seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def http_get(client: Client, url: str, params: DownloadParams) -> bytes:
    """Return the body of a GET through ``client``'s opener (its EIDA credentials included).

    Raises:
        FDSNException: ObsPy's exception for the HTTP code (204/404: no data), with a
            ``retry_after`` attribute when the server sent ``Retry-After``.
        http.client.IncompleteRead: the body ended before its announced length.
        RequestDeadlineExceeded: the whole answer took more than ``params.request_deadline``.
        FDSNTimeoutException: no packet for ``params.timeout`` seconds.
    """
    deadline = time.monotonic() + params.request_deadline
    request = urllib.request.Request(url, headers=dict(client.request_headers))
    try:
        response = client._url_opener.open(
            request, timeout=min(params.timeout, params.request_deadline)
        )
    except urllib.error.HTTPError as exc:
        try:
            body = exc.read(4096)
        except Exception:
            body = b""
        try:
            raise_on_error(exc.code, body)
        except Exception as err:
            # read by the retry loop: how long the server asked us to wait
            err.retry_after = _retry_after(  # type: ignore[attr-defined]
                exc.headers.get("Retry-After") if exc.headers else None
            )
            raise
        raise FDSNException(f"HTTP code {exc.code}") from exc
    except (TimeoutError, urllib.error.URLError) as exc:
        if isinstance(exc, TimeoutError) or "timed out" in str(exc).lower():
            raise FDSNTimeoutException(f"Timed Out after {params.timeout:g} s") from exc
        raise ConnectionError(str(exc)) from exc
    with response:
        if response.getcode() == 204:
            raise FDSNNoDataException("No data available for request.")
        if response.getcode() != 200:
            raise_on_error(response.getcode(), response.read(4096))
        chunks: list[bytes] = []
        try:
            while True:
                if time.monotonic() > deadline:
                    raise RequestDeadlineExceeded(
                        f"answer took more than request_deadline={params.request_deadline:g} s "
                        f"({sum(map(len, chunks))} bytes so far)"
                    )
                chunk = response.read1(1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
        except TimeoutError as exc:
            raise FDSNTimeoutException(f"Timed Out after {params.timeout:g} s mid-body") from exc
        body = b"".join(chunks)
        if response.length:  # the connection closed before Content-Length bytes came
            raise http.client.IncompleteRead(body, response.length)
    return body


def dataselect_url(
    client: Client,
    network: str,
    station: str,
    channels: list[tuple[str, str]],
    start: UTCDateTime,
    end: UTCDateTime,
) -> str:
    """Return the fdsnws-dataselect query URL (``queryauth`` with EIDA credentials).

    Raises:
        FDSNNoServiceException: when the client has no dataselect service.
    """
    if "dataselect" not in getattr(client, "services", {"dataselect": None}):
        raise FDSNNoServiceException(f"{client.base_url} has no fdsnws-dataselect service")
    query = {
        "network": network,
        "station": station,
        "location": fdsn_list(sorted({loc for loc, _ in channels}), location=True),
        "channel": ",".join(sorted({cha for _, cha in channels})),
        "starttime": start.strftime("%Y-%m-%dT%H:%M:%S.%f"),
        "endtime": end.strftime("%Y-%m-%dT%H:%M:%S.%f"),
    }
    base = client._build_url("dataselect", "query")
    return f"{base}?{urllib.parse.urlencode(query, safe=',*?')}"
