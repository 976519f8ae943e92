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
