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
