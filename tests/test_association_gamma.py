"""GaMMA's location step in QuakeLake's faster form gives GaMMA's own numbers, bit for bit (issue 26)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quakelake.archive.stations import read_stations
from quakelake.association import associate as asc
from quakelake.association import gamma_location
from quakelake.params.association import GammaConfig, VelocityParams


@pytest.mark.slow
@pytest.mark.parametrize("eikonal", [True, False], ids=["1-D eikonal", "straight rays"])
def test_location_solves_equal_gammas_own(shared_data, monkeypatch, eikonal):
    """Every component location GaMMA asks for on the Salton Sea day (175 picks) is GaMMA's.

    The association runs through QuakeLake (automatic settings, ak135); the arguments of each
    location solve are kept as it runs, then GaMMA's own ``calc_loc`` solves a sample of them
    again: the same location and loss to the last bit, and the loss and gradient agree at the
    start and at points around it.
    """
    from gamma import seismic_ops

    d = shared_data / "phasenet_saltonsea_20201001"
    picks = pd.read_csv(d / "DERIVED_phasenet_ref_picks_first180s.csv")
    stations = read_stations(d / "stations.xml")
    config = GammaConfig(eikonal=eikonal)
    if not eikonal:
        config = config.model_copy(update={"velocity": VelocityParams(kind="0d")})
    solves: list[tuple[tuple, dict, tuple]] = []
    ours = gamma_location.calc_loc

    def kept(*args, **kwargs):
        out = ours(*args, **kwargs)
        solves.append((args, kwargs, out))
        return out

    monkeypatch.setattr(gamma_location, "calc_loc", kept)
    res = asc.associate(picks, stations, config)
    assert len(res.events) >= 5
    assert len(solves) > 100
    for args, kwargs, (x, fun) in solves[::7]:
        want_x, want_fun = seismic_ops.calc_loc(*args, **kwargs)
        assert np.array_equal(x, want_x) and fun == want_fun
        phase_time, phase_type, station_loc, weight, x0 = args
        problem = gamma_location._Problem(
            phase_time, phase_type, station_loc, weight, kwargs["vel"], 1, kwargs["eikonal"]
        )
        for step in (0.0, 0.7, -3.1):
            at = np.squeeze(x0).astype(float) + step
            loss, grad = problem.loss_grad(at)
            want_loss, want_grad = seismic_ops.huber_loss_grad(
                at, phase_time, phase_type, station_loc, weight, kwargs["vel"], 1, kwargs["eikonal"]
            )
            assert loss == want_loss and np.array_equal(grad, want_grad)


@pytest.mark.slow
def test_eikonal_tables_are_gammas_and_kept_in_the_cache(tmp_path, monkeypatch):
    """GaMMA's eikonal tables are solved once per user: the second association reads them back.

    The cached tables equal GaMMA's ``initialize_eikonal`` bit for bit, and an entry that was
    tampered with is not used (recomputed, the same values again).
    """
    from gamma import seismic_ops

    from quakelake.lakehouse import cache

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # GaMMA's solver makes an ./eikonal folder
    config = {
        "vel": {"z": [0.0, 20.0, 35.0], "p": [5.8, 6.5, 8.0], "s": [3.36, 3.75, 4.47]},
        "h": 1.0,
        "xlim": (-20.0, 25.0),
        "ylim": (-15.0, 20.0),
        "zlim": (-1.0, 30.0),
    }
    want = seismic_ops.initialize_eikonal(dict(config))
    entries = cache.cache_dir("eikonal")

    for attempt in ("solved", "read back"):
        got = gamma_location.cached_eikonal(dict(config))
        assert len(list(entries.glob("*.parquet"))) == 1, attempt
        for name in ("up", "us", "grad_up", "grad_us", "rgrid", "zgrid"):
            assert np.array_equal(got[name], want[name]), (attempt, name)
        assert (got["nr"], got["nz"], got["h"]) == (want["nr"], want["nz"], want["h"])

    (entry,) = entries.glob("*.parquet")
    raw = bytearray(entry.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    entry.write_bytes(bytes(raw))
    got = gamma_location.cached_eikonal(dict(config))
    assert np.array_equal(got["up"], want["up"]) and np.array_equal(got["grad_us"], want["grad_us"])


@pytest.mark.slow
def test_lbfgsb_driver_equals_scipy_minimize_on_every_solve(shared_data, monkeypatch):
    """QuakeLake's L-BFGS-B driver returns ``scipy.optimize.minimize``'s x and loss, bit for bit.

    Every location solve of the Salton Sea day (automatic settings, 1-D eikonal), then each
    again stopped early by ``maxiter`` and from a start outside the bounds (clipped), and with
    the bounds as a list (not kept between solves). Where the driver declines (a float32 start)
    or SciPy's private routine is missing, ``calc_loc`` still gives GaMMA's own result.
    """
    import scipy.optimize
    from gamma import seismic_ops

    d = shared_data / "phasenet_saltonsea_20201001"
    picks = pd.read_csv(d / "DERIVED_phasenet_ref_picks_first180s.csv")
    stations = read_stations(d / "stations.xml")
    solves: list[tuple[tuple, dict]] = []
    ours = gamma_location.calc_loc

    def kept(*args, **kwargs):
        solves.append((args, kwargs))
        return ours(*args, **kwargs)

    monkeypatch.setattr(gamma_location, "calc_loc", kept)
    asc.associate(picks, stations, GammaConfig())
    monkeypatch.setattr(gamma_location, "calc_loc", ours)
    assert len(solves) > 1000 and gamma_location._SCIPY_LBFGSB is not None

    stops = {"converged": 0, "other stop": 0, "maxiter": 0, "clipped": 0}
    for i, (args, kwargs) in enumerate(solves):
        phase_time, phase_type, station_loc, weight, x0 = args
        problem = gamma_location._Problem(
            phase_time, phase_type, station_loc, weight, kwargs["vel"], 1, kwargs["eikonal"]
        )
        bounds = kwargs["bounds"]
        lower = np.array([-np.inf if lo is None else lo for lo, _ in bounds])
        upper = np.array([np.inf if hi is None else hi for _, hi in bounds])
        start = np.squeeze(x0)
        runs = [(start, bounds, 100), (start, bounds, 3)]
        if i % 10 == 0:  # outside every finite bound (alternately below and above); as lists
            outside = np.where(np.isfinite(lower), np.where(i % 20, lower - 5, upper + 5), start)
            runs += [(outside, [list(b) for b in bounds], 100)]
        for at, bounds_, max_iter in runs:
            want = scipy.optimize.minimize(
                problem.loss_grad,
                at,
                method="L-BFGS-B",
                jac=True,
                bounds=bounds_,
                options={"maxiter": max_iter, "gtol": 1e-6},
            )
            got = gamma_location._lbfgsb(problem.loss_grad, at, bounds_, max_iter, 1e-6)
            assert got is not None
            x, fun = got
            assert np.array_equal(x, want.x) and fun == want.fun and type(fun) is type(want.fun)
            kind = "converged" if want.success else "other stop"
            if want.nit >= max_iter:
                kind = "maxiter"
            if not np.array_equal(np.clip(at, lower, upper), at):
                kind = "clipped"
            stops[kind] += 1
    assert min(stops.values()) > 100, stops

    # where the driver declines, or SciPy lacks its routine: minimize, GaMMA's numbers all the same
    args, kwargs = solves[len(solves) // 2]
    declined = (*args[:4], np.asarray(args[4], dtype=np.float32))
    assert gamma_location._lbfgsb(np.sum, np.squeeze(declined[4]), None, 100, 1e-6) is None
    want_x, want_fun = seismic_ops.calc_loc(*declined, **kwargs)
    x, fun = gamma_location.calc_loc(*declined, **kwargs)
    assert np.array_equal(x, want_x) and fun == want_fun
    monkeypatch.setattr(gamma_location, "_SCIPY_LBFGSB", None)
    for args, kwargs in solves[::97]:
        want_x, want_fun = seismic_ops.calc_loc(*args, **kwargs)
        x, fun = gamma_location.calc_loc(*args, **kwargs)
        assert np.array_equal(x, want_x) and fun == want_fun
