"""Weights without the shared cache: PhaseNetLight "ethz" from SeisBench's source distribution."""

from __future__ import annotations

import urllib.request

import obspy
import pytest

from quakelake.picking import models as picking
from quakelake.picking import weights


def _pypi_reachable() -> bool:
    try:
        urllib.request.urlopen(weights.PYPI_SIMPLE, timeout=10).close()
        return True
    except OSError:
        return False


@pytest.mark.network
def test_sdist_weights_seed_an_empty_cache_and_pick(tmp_path, monkeypatch, shared_data):
    if not _pypi_reachable():
        pytest.skip("PyPI is unreachable: cannot fetch SeisBench's source distribution")
    monkeypatch.setenv("SEISBENCH_CACHE_ROOT", str(tmp_path))
    import seisbench

    monkeypatch.setattr(seisbench, "cache_root", tmp_path)
    monkeypatch.setattr(seisbench, "cache_model_root", tmp_path / "models" / "v3")
    assert not weights.has_weights("PhaseNetLight", "ethz")
    assert weights.seed_from_sdist()
    assert weights.has_weights("PhaseNetLight", "ethz")
    model = picking.load_model("PhaseNetLight", "ethz", "cpu")
    st = obspy.read(
        str(shared_data / "phasenet_saltonsea_20201001" / "mseed" / "CI.WMD.2020-10-01T00:00.mseed")
    )
    picks = model.classify(st, P_threshold=0.3, S_threshold=0.3).picks
    assert len(picks) >= 5 and {p.phase for p in picks} == {"P", "S"}
