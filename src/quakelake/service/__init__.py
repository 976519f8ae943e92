"""Long-lived processes: the local Prefect server (server), the warm Dask workers (warm) and the
watchdog that ends a killed command's children (lifeline).

Public names are re-exported lazily (:mod:`quakelake.exports`): ``from quakelake.service import X``
imports only the submodule that defines ``X``.
"""

from __future__ import annotations

from quakelake.exports import lazy_exports

_EXPORTS = {
    "answers": "server",
    "code_fingerprint": "server",
    "descendants": "lifeline",
    "local_server": "server",
    "log_file": "server",
    "main": "warm",
    "prefect_home": "server",
    "resolve_api": "server",
    "state_file": "server",
    "stop": "server",
    "warm_fit": "server",
    "warm_record_file": "server",
    "warm_up": "warm",
    "watch": "lifeline",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
