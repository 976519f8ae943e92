"""GaMMA's location step and eikonal tables without repeated work, giving GaMMA's numbers bit for bit.

GaMMA's M-step locates every mixture component with L-BFGS-B on a Huber loss
(``gamma.seismic_ops.calc_loc`` -> ``huber_loss_grad``). On the 180-s Salton Sea day (175
picks) that is ~1,200 solves and ~23,000 loss evaluations, most of the association's time:
each evaluation compares the phase labels as strings six times, computes the epicentral
distances twice (travel time and gradient), looks the eikonal grid up in a dict and runs ~45
numpy operations on arrays of ~15 picks (~70 us, nearly all call overhead).

:func:`calc_loc` is a drop-in for GaMMA's: labels, station columns and tables are prepared
once per solve; each evaluation runs in numba kernels that perform GaMMA's operations in
GaMMA's order (distances, its bilinear interpolation, float32 travel times, the Jacobian, the
Huber terms, the gradient's rows added one after the other as ``np.sum(axis=0)`` does), and
the loss terms are summed by ``np.sum`` as in GaMMA (numpy's pairwise summation). The loss, its
gradient and hence every L-BFGS step and location are GaMMA's to the last bit (~9 us per
evaluation; ``tests/test_association_gamma.py`` compares them with GaMMA's own functions on
real picks, and ``benchmarks/compare_lakes.py`` the lake tables of a whole ``run``). SciPy's
L-BFGS-B routine is driven as ``scipy.optimize.minimize`` drives it, without its Python
wrappers (:func:`_lbfgsb`; ``minimize`` where SciPy's private routine differs): the solves of
the day take half the CPU (``benchmarks/gamma_location.py``).
:func:`cached_eikonal` keeps GaMMA's solved eikonal tables in the user's cache.
:func:`faster_locations` installs both for the duration of one GaMMA call.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from numba import njit


@njit
def _interp(table, r, z, r0, z0, nr, nz, h):  # pragma: no cover (compiled)
    """GaMMA's bilinear ``_interp`` of one (offset, depth) point: its expressions, in its order."""
    i0 = min(max(math.floor((r - r0) / h), 0), nr - 2)
    k0 = min(max(math.floor((z - z0) / h), 0), nz - 2)
    r = min(max(r, r0), r0 + (nr - 1) * h)
    z = min(max(z, z0), z0 + (nz - 1) * h)
    i1, k1 = i0 + 1, k0 + 1
    x1 = i0 * h + r0
    x2 = i1 * h + r0
    z1 = k0 * h + z0
    z2 = k1 * h + z0
    q11 = table[i0 * nz + k0]
    q12 = table[i0 * nz + k1]
    q21 = table[i1 * nz + k0]
    q22 = table[i1 * nz + k1]
    return (
        1
        / (x2 - x1)
        / (z2 - z1)
        * (
            q11 * (x2 - r) * (z2 - z)
            + q21 * (r - x1) * (z2 - z)
            + q12 * (x2 - r) * (z - z1)
            + q22 * (r - x1) * (z - z1)
        )
    )


@njit
def _residuals(
    x, st_x, st_y, st_z, phase, phase_time, tables, grid, nr, nz, t_diff, J
):  # pragma: no cover (compiled)
    """Fill ``t_diff`` (predicted minus picked time) and ``J`` (its gradient) per pick.

    ``phase``: 0 for P, 1 for S, -1 for others (travel time 0, as GaMMA leaves them);
    ``tables[k]``: travel time, d/d offset and d/d depth of phase ``k``.
    """
    r0, z0, h = grid[0], grid[1], grid[2]
    for i in range(len(st_x)):
        dx = x[0] - st_x[i]
        dy = x[1] - st_y[i]
        r = math.sqrt(dx * dx + dy * dy)
        z = x[2] - st_z[i]
        k = phase[i]
        tt = np.float32(0.0)
        dt_dr = 0.0
        dt_dz = 0.0
        if k >= 0:
            tt = np.float32(_interp(tables[k, 0], r, z, r0, z0, nr, nz, h))
            dt_dr = _interp(tables[k, 1], r, z, r0, z0, nr, nz, h)
            dt_dz = _interp(tables[k, 2], r, z, r0, z0, nr, nz, h)
        t_diff[i, 0] = (np.float64(tt) + x[3]) - phase_time[i, 0]
        J[i, 0] = dt_dr * (dx / (r + 1e-6))
        J[i, 1] = dt_dr * (dy / (r + 1e-6))
        J[i, 2] = dt_dz
        J[i, 3] = 1.0


@njit
def _huber(t_diff, J, weight, sigma, grad, linear, quadratic):  # pragma: no cover (compiled)
    """GaMMA's Huber loss terms of ``t_diff`` and the loss's gradient (into ``grad``).

    The loss terms go to ``linear`` (``|t| > sigma``) and ``quadratic`` (the others), in pick
    order; their counts are returned for ``np.sum`` to add them as GaMMA does (numpy's pairwise
    summation). The gradient's rows are added one after the other, as ``np.sum(axis=0)`` does.
    """
    n = t_diff.shape[0]
    half = 0.5 * sigma**2
    g1 = np.zeros(4)
    g2 = np.zeros(4)
    k1 = 0
    k2 = 0
    for i in range(n):
        t = t_diff[i, 0]
        if abs(t) > sigma:
            linear[k1] = (sigma * abs(t) - half) * weight[i, 0]
            k1 += 1
            s = sigma * np.sign(t)
            for j in range(4):
                g1[j] += s * J[i, j] * weight[i, 0]
        elif abs(t) <= sigma:
            quadratic[k2] = 0.5 * (t * t) * weight[i, 0]
            k2 += 1
            for j in range(4):
                g2[j] += t * J[i, j] * weight[i, 0]
    for j in range(4):
        grad[0, j] = g1[j] + g2[j]
    return k1, k2


@njit
def _eikonal_terms(
    x,
    st_x,
    st_y,
    st_z,
    phase,
    phase_time,
    tables,
    grid,
    nr,
    nz,
    t_diff,
    J,
    weight,
    sigma,
    grad,
    linear,
    quadratic,
):  # pragma: no cover (compiled)
    """:func:`_residuals` then :func:`_huber`, in one call from Python (one dispatch, not two)."""
    _residuals(x, st_x, st_y, st_z, phase, phase_time, tables, grid, nr, nz, t_diff, J)
    return _huber(t_diff, J, weight, sigma, grad, linear, quadratic)


class _Problem:
    """One location solve's invariants: phase codes, station columns, eikonal tables."""

    def __init__(
        self,
        phase_time: np.ndarray,
        phase_type: Any,
        station_loc: np.ndarray,
        weight: np.ndarray,
        vel: dict,
        sigma: float,
        eikonal: dict | None,
    ):
        phase_type = np.asarray(phase_type)
        self.phase_time = phase_time
        self.terms = np.empty(len(phase_type)), np.empty(len(phase_type))
        self.station_loc = station_loc
        self.weight = weight
        self.sigma = sigma
        self.eikonal = eikonal
        if eikonal is None:
            self.v = np.array([vel[p] for p in phase_type])[:, np.newaxis]
            return
        self.phase = np.where(phase_type == "p", 0, np.where(phase_type == "s", 1, -1))
        self.st = [np.ascontiguousarray(station_loc[:, i], dtype=np.float64) for i in range(3)]
        self.tables = _tables(eikonal)
        self.grid = np.array([eikonal["rgrid"][0], eikonal["zgrid"][0], eikonal["h"]], float)
        self.size = (int(eikonal["nr"]), int(eikonal["nz"]))
        self.t_diff = np.empty((len(phase_type), 1))
        self.J = np.empty((len(phase_type), 4))

    def loss_grad(self, x: np.ndarray) -> tuple[Any, np.ndarray]:
        """GaMMA's ``huber_loss_grad(x, ...)``: the same values, element-wise part compiled."""
        sigma, weight = self.sigma, self.weight
        grad = np.empty((1, 4))
        linear, quadratic = self.terms
        if self.eikonal is None:
            event_loc = x[np.newaxis, :]
            dist = np.linalg.norm(event_loc[:, :-1] - self.station_loc, axis=-1, keepdims=True)
            t_diff = dist / self.v + event_loc[:, -1:] - self.phase_time
            J = np.zeros([self.phase_time.shape[0], event_loc.shape[1]])
            J[:, :-1] = (event_loc[:, :-1] - self.station_loc) / (dist + 1e-6) / self.v
            J[:, -1] = 1
            k1, k2 = _huber(t_diff, J, weight, float(sigma), grad, linear, quadratic)
        else:
            k1, k2 = _eikonal_terms(  # type: ignore[call-arg]  # numba dispatcher
                np.asarray(x, dtype=np.float64),
                *self.st,
                self.phase,
                self.phase_time,
                self.tables,
                self.grid,
                *self.size,
                self.t_diff,
                self.J,
                weight,
                float(sigma),
                grad,
                linear,
                quadratic,
            )
        # np.sum's own reduction (np.sum of an ndarray is np.add.reduce), without its wrapper
        return _sum(linear[:k1], axis=None) + _sum(quadratic[:k2], axis=None), grad


_sum = np.add.reduce


def _tables(eikonal: dict) -> np.ndarray:
    """Return ``[phase (P, S), (time, d/d offset, d/d depth), grid point]`` of GaMMA's eikonal dict."""
    kept = eikonal.get("_quakelake_tables")
    if kept is None:
        kept = np.stack(
            [
                np.stack([eikonal["up"], eikonal["grad_up"][0], eikonal["grad_up"][1]]),
                np.stack([eikonal["us"], eikonal["grad_us"][0], eikonal["grad_us"][1]]),
            ]
        ).astype(np.float64)
        eikonal["_quakelake_tables"] = kept
    return kept


def _scipy_lbfgsb() -> tuple[Any, dict[str, Any]] | None:
    """SciPy's compiled L-BFGS-B step and ``_minimize_lbfgsb``'s defaults, or None.

    :func:`_lbfgsb` drives ``scipy.optimize._lbfgsb.setulb`` (SciPy's C routine since 1.15) the
    way ``_minimize_lbfgsb`` does. Those are private SciPy parts: they are checked once, when
    this module is imported (the routine's argument list, the status codes the loop reads and
    the defaults it takes over); a SciPy where they differ leaves :func:`calc_loc` on
    ``scipy.optimize.minimize`` (the same numbers, slower).
    """
    import inspect

    try:
        from scipy.optimize import _lbfgsb, _lbfgsb_py

        setulb = _lbfgsb.setulb
        params = inspect.signature(_lbfgsb_py._minimize_lbfgsb).parameters
        defaults = {name: params[name].default for name in ("maxcor", "ftol", "maxfun", "maxls")}
        statuses = {k: _lbfgsb_py.status_messages[k] for k in (1, 3, 4, 5)}
        stops = {k: _lbfgsb_py.task_messages[k] for k in (502, 504)}
    except (ImportError, AttributeError, KeyError, TypeError, ValueError):
        return None
    arguments = (setulb.__doc__ or "").strip().splitlines()[:1]
    if (
        arguments != [_SETULB_ARGUMENTS]
        or statuses != {1: "NEW_X", 3: "FG", 4: "CONVERGENCE", 5: "STOP"}
        or stops
        != {
            502: "TOTAL NO. OF F,G EVALUATIONS EXCEEDS LIMIT",
            504: "TOTAL NO. OF ITERATIONS REACHED LIMIT",
        }
        or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in defaults.values()
        )
    ):
        return None
    return setulb, defaults


_SETULB_ARGUMENTS = (
    "setulb(m,x,l,u,nbd,f,g,factr,pgtol,wa,iwa,task,lsave,isave,dsave,maxls,ln_task)"
)
# None: scipy.optimize.minimize locates (see _scipy_lbfgsb)
_SCIPY_LBFGSB = _scipy_lbfgsb()
_Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
# the last bounds solved (by id) and their arrays: see _bounds_arrays
_BOUNDS: dict[int, tuple[Any, _Arrays]] = {}


def _bounds_arrays(bounds: Any, n: int) -> _Arrays | None:
    """Return ``(lower, upper, l, u, nbd)`` as ``_minimize_lbfgsb`` makes them, or None.

    ``lower``/``upper``: the bounds with -inf/inf for None (what x0 is clipped to); ``l``, ``u``
    and ``nbd``: the routine's arrays. None for bounds that ``minimize`` rejects or treats
    apart (wrong length, a lower bound above its upper bound, NaN, every variable fixed).
    """
    kept = _BOUNDS.get(id(bounds))
    if kept is not None and kept[0] is bounds:
        return kept[1]
    try:
        if len(bounds) != n:
            return None
        pairs = [
            (float(np.asarray(lo).item()), float(np.asarray(hi).item()))
            for lo, hi in (
                (-np.inf if lo is None else lo, np.inf if hi is None else hi) for lo, hi in bounds
            )
        ]
    except (TypeError, ValueError):
        return None
    lower = np.array([lo for lo, _ in pairs])
    upper = np.array([hi for _, hi in pairs])
    if (
        np.isnan(lower).any()
        or np.isnan(upper).any()
        or (lower > upper).any()
        or (lower == upper).all()
    ):
        return None
    low_bnd, upper_bnd, nbd = np.zeros(n), np.zeros(n), np.zeros(n, np.int32)
    for i, (lo, hi) in enumerate(pairs):
        # _minimize_lbfgsb's bounds_map: 0 none, 1 lower, 2 both, 3 upper
        if not np.isinf(lo):
            low_bnd[i] = lo
        if not np.isinf(hi):
            upper_bnd[i] = hi
        nbd[i] = {(False, False): 0, (True, False): 1, (True, True): 2, (False, True): 3}[
            (not np.isinf(lo), not np.isinf(hi))
        ]
    arrays = lower, upper, low_bnd, upper_bnd, nbd
    # kept for the next solves of the same bounds when they cannot change (GaMMA's are a tuple
    # of pairs of numbers, the same object for every solve of an association)
    if isinstance(bounds, tuple) and all(
        isinstance(pair, tuple) and all(v is None or isinstance(v, int | float) for v in pair)
        for pair in bounds
    ):
        _BOUNDS.clear()
        _BOUNDS[id(bounds)] = bounds, arrays
    return arrays


def _lbfgsb(
    loss_grad: Any, x0: np.ndarray, bounds: Any, maxiter: int, gtol: float
) -> tuple[np.ndarray, Any] | None:
    """``minimize(loss_grad, x0, method="L-BFGS-B", jac=True, bounds=bounds, options={"maxiter":
    maxiter, "gtol": gtol})``'s ``x`` and ``fun``, from SciPy's own routine without its wrappers.

    The same calls in the same order as ``_minimize_lbfgsb`` (SciPy 1.15-1.17): x0 clipped to
    the bounds, the loss evaluated there first (``ScalarFunction``), an evaluation only where x
    differs from the last one evaluated, the same stops (maxiter, maxfun, the routine's own
    gtol and ftol tests). None where the call is not one it reproduces (no such routine, an x0
    that is not 1-D float64, bounds ``minimize`` rejects or treats apart): use ``minimize``.
    """
    if _SCIPY_LBFGSB is None or x0.ndim != 1 or x0.dtype != np.float64 or maxiter is None:
        return None
    setulb, defaults = _SCIPY_LBFGSB
    n = x0.shape[0]
    m, maxfun, maxls = defaults["maxcor"], defaults["maxfun"], defaults["maxls"]
    factr = defaults["ftol"] / np.finfo(float).eps
    if bounds is None:
        low_bnd, upper_bnd, nbd = np.zeros(n), np.zeros(n), np.zeros(n, np.int32)
    else:
        arrays = _bounds_arrays(bounds, n)
        if arrays is None:
            return None
        lower, upper, low_bnd, upper_bnd, nbd = arrays
        x0 = np.clip(x0, lower, upper)

    def evaluate(at: np.ndarray) -> tuple[Any, np.ndarray]:
        # ScalarFunction's: the loss as a true scalar, the gradient 1-D. It hands the function a
        # copy of x; ``at`` is one already (loss_grad keeps no reference to it, nor changes it)
        fx, grad = loss_grad(at)
        if not np.isscalar(fx):
            fx = np.asarray(fx).item()
        return fx, np.atleast_1d(grad)

    evaluated = np.array(x0, dtype=np.float64)
    fx, gx = evaluate(evaluated)
    nfev = 1
    x = np.array(x0, dtype=np.float64)
    f: Any = np.array(0.0)
    g = np.zeros(n)
    wa = np.zeros(2 * m * n + 5 * n + 11 * m * m + 8 * m)
    iwa = np.zeros(3 * n, dtype=np.int32)
    task = np.zeros(2, dtype=np.int32)
    ln_task = np.zeros(2, dtype=np.int32)
    lsave = np.zeros(4, dtype=np.int32)
    isave = np.zeros(44, dtype=np.int32)
    dsave = np.zeros(29)
    n_iterations = 0
    while True:
        g = g.astype(np.float64)
        setulb(
            m,
            x,
            low_bnd,
            upper_bnd,
            nbd,
            f,
            g,
            factr,
            gtol,
            wa,
            iwa,
            task,
            lsave,
            isave,
            dsave,
            maxls,
            ln_task,
        )
        if task[0] == 3:  # FG: the loss and gradient at x
            if not (x == evaluated).all():  # np.array_equal (same shape; NaN never equal)
                evaluated = x.copy()
                fx, gx = evaluate(evaluated)
                nfev += 1
            f, g = fx, gx
        elif task[0] == 1:  # NEW_X: an iteration done
            n_iterations += 1
            if n_iterations >= maxiter:
                task[0], task[1] = 5, 504
            elif nfev > maxfun:
                task[0], task[1] = 5, 502
        else:
            return x, f


def calc_loc(
    phase_time,
    phase_type,
    station_loc,
    weight,
    event_loc0,
    eikonal=None,
    vel={"p": 6.0, "s": 6.0 / 1.75},  # noqa: B006 (GaMMA's signature)
    bounds=None,
    max_iter=100,
    convergence=1e-6,
):
    """GaMMA's ``seismic_ops.calc_loc`` (same arguments, same result), evaluated faster.

    SciPy's L-BFGS-B routine is driven by :func:`_lbfgsb` (the same steps as
    ``scipy.optimize.minimize``, without its per-call and per-evaluation wrappers), or by
    ``minimize`` itself where :func:`_lbfgsb` declines.
    """
    problem = _Problem(phase_time, phase_type, station_loc, weight, vel, 1, eikonal)
    x0 = np.squeeze(event_loc0)
    solved = _lbfgsb(problem.loss_grad, np.asarray(x0), bounds, max_iter, convergence)
    if solved is not None:
        x, fun = solved
        return x[np.newaxis, :], fun
    return _minimize(problem.loss_grad, x0, bounds, max_iter, convergence)


def _minimize(
    loss_grad: Any, x0: Any, bounds: Any, max_iter: int, convergence: float
) -> tuple[np.ndarray, Any]:
    """GaMMA's own call of ``scipy.optimize.minimize``: its ``x[np.newaxis, :]`` and ``fun``."""
    import scipy.optimize

    opt = scipy.optimize.minimize(
        loss_grad,
        x0,
        method="L-BFGS-B",
        jac=True,
        bounds=bounds,
        # GaMMA's iprint=-1 (no output) is SciPy's default; SciPy >= 1.16 ignores it and warns at
        # every solve (~0.2 ms each)
        options={"maxiter": max_iter, "gtol": convergence},
    )
    return opt.x[np.newaxis, :], opt.fun


# Bump when what cached_eikonal stores changes (entries are then recomputed).
EIKONAL_VERSION = "1"
_EIKONAL_COLUMNS = ["up", "us", "grad_up_r", "grad_up_z", "grad_us_r", "grad_us_z"]


def _eikonal_grid(config: dict) -> tuple[np.ndarray, np.ndarray]:
    """Return GaMMA's (offset, depth) grid of an eikonal configuration, as it builds it."""
    h = config["h"]
    xlim, ylim, zlim = config["xlim"], config["ylim"], config["zlim"]
    rlim = [0, np.sqrt((xlim[1] - xlim[0]) ** 2 + (ylim[1] - ylim[0]) ** 2)]
    return np.arange(rlim[0], rlim[1], h), np.arange(zlim[0], zlim[1], h)


def _eikonal_problem(frame: pd.DataFrame, size: int) -> str | None:
    """Return what is wrong with a cached eikonal table of ``size`` grid points (None: sound)."""
    if list(frame.columns) != _EIKONAL_COLUMNS or len(frame) != size:
        return f"not an eikonal table of {size} points ({', '.join(_EIKONAL_COLUMNS)})"
    values = frame.to_numpy()
    if values.dtype != np.float64 or not np.isfinite(values).all():
        return "non-finite or non-float travel times"
    if (frame["up"] < 0).any() or (frame["us"] < 0).any():
        return "negative travel times"
    return None


def cached_eikonal(config: dict) -> dict:
    """GaMMA's ``initialize_eikonal(config)``, its tables computed once per user.

    GaMMA solves the eikonal equation of the 1-D model at every association (0.3-0.6 s for the
    Salton Sea day). The solved tables are a pure function of the configuration (model, grid
    step and limits) and of GaMMA's solver: they are kept in the user's cache
    (:mod:`quakelake.lakehouse.cache`, kind ``eikonal``) under a key of both, checked when read
    (:func:`_eikonal_problem`) and recomputed when missing or unsound. The dict returned is the
    one GaMMA builds: the same arrays, the same values.
    """
    import json
    from importlib.metadata import version

    from gamma import seismic_ops

    from quakelake.lakehouse import cache

    rgrid, zgrid = _eikonal_grid(config)
    nr, nz = len(rgrid), len(zgrid)
    described = {k: config[k] for k in ("vel", "h", "xlim", "ylim", "zlim")}
    key = cache.content_key(
        "eikonal",
        EIKONAL_VERSION,
        version("GMMA"),
        json.dumps(described, sort_keys=True, default=float),
    )
    frame = cache.read_frame("eikonal", key, lambda f: _eikonal_problem(f, nr * nz))
    if frame is None:
        solved = seismic_ops.initialize_eikonal(dict(config))
        frame = pd.DataFrame(
            {
                "up": solved["up"],
                "us": solved["us"],
                "grad_up_r": solved["grad_up"][0],
                "grad_up_z": solved["grad_up"][1],
                "grad_us_r": solved["grad_us"][0],
                "grad_us_z": solved["grad_us"][1],
            }
        )
        cache.write_frame("eikonal", key, frame)
    config.update(
        {
            "up": frame["up"].to_numpy(),
            "us": frame["us"].to_numpy(),
            "grad_up": np.array([frame["grad_up_r"].to_numpy(), frame["grad_up_z"].to_numpy()]),
            "grad_us": np.array([frame["grad_us_r"].to_numpy(), frame["grad_us_z"].to_numpy()]),
            "rgrid": rgrid,
            "zgrid": zgrid,
            "nr": nr,
            "nz": nz,
            "h": config["h"],
        }
    )
    return config


def warm_kernels() -> None:
    """Load the compiled kernels of an eikonal location (numba's cache) with a tiny solve.

    Loading a cached kernel still types its signature in numba (~0.3 s on a 2-core machine at a
    command's first location); a process that keeps running (the warm process of ``quakelake
    server start``) pays it once here. The tables are a synthetic constant-velocity grid with
    the dtypes :func:`cached_eikonal` gives, nothing is written but numba's own cache.
    """
    from gamma import seismic_ops

    rgrid, zgrid = np.arange(0.0, 4.0, 1.0), np.arange(0.0, 4.0, 1.0)
    r, z = np.meshgrid(rgrid, zgrid, indexing="ij")
    dist = np.hypot(r, z).ravel()
    eikonal: dict[str, Any] = {"rgrid": rgrid, "zgrid": zgrid, "nr": 4, "nz": 4, "h": 1.0}
    for phase, v in (("p", 6.0), ("s", 3.5)):
        eikonal[f"u{phase}"] = dist / v
        eikonal[f"grad_u{phase}"] = np.array([r.ravel() / v, z.ravel() / v])
    stations = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [2.0, 2.0, 0.0]])
    phases = np.array(["p", "s", "p", "s"])
    event = np.array([[1.0, 1.0, 1.0, 0.0]])
    times = seismic_ops.calc_time(event, stations, phases, eikonal=eikonal)
    bounds = ((0.0, 3.0), (0.0, 3.0), (0.0, 3.0), (None, None))
    calc_loc(times, phases, stations, np.ones((4, 1)), event + 0.1, eikonal=eikonal, bounds=bounds)


@contextlib.contextmanager
def faster_locations() -> Iterator[None]:
    """Inside the block GaMMA locates with :func:`calc_loc` and its eikonal tables are cached.

    Not thread-safe on its own: callers hold the lock that serialises GaMMA calls.
    """
    from gamma import _gaussian_mixture, utils

    original = _gaussian_mixture.calc_loc, utils.initialize_eikonal
    _gaussian_mixture.calc_loc, utils.initialize_eikonal = calc_loc, cached_eikonal
    try:
        yield
    finally:
        _gaussian_mixture.calc_loc, utils.initialize_eikonal = original
