"""1-D velocity models and the travel-time tables computed from them.

A velocity model is a DataFrame of points ``depth`` (km below sea level), ``vp`` and ``vs``
(km/s), read from the usual layered-model files:

* TauP ``.nd`` (``depth vp vs rho [qp qs]``, named discontinuities such as ``mantle`` ignored),
* VELEST ``.mod`` (a P block and an S block of ``velocity depth damping`` layer tops),
* CSV with a header ``depth, vp, vs`` (optionally ``vp_grad``/``vs_grad`` per km, as PyOcto's
  test models have; a P-only model, ``vs`` absent or 0, gets ``vs = vp / sqrt(3)``),
* whitespace tables of layers ``depth vp [vp_grad] vs [vs_grad] ...`` after a ``#`` comment line.

Velocities are linear between consecutive points; two points at the same depth make a
discontinuity. Layer files (VELEST, plain layer tables) become constant-velocity layers.

Travel times come from a 2-D eikonal solution (Pyrocko's fast-marching solver, as PyOcto's own
``VelocityModel1D.create_model`` uses) on a distance x depth grid, kept as a
:class:`TravelTimeTable` that both PyOcto (its binary table file) and QuakeLake's relocation use.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from quakelake.errors import BadInput
from quakelake.lakehouse.atomic import atomic_write

if TYPE_CHECKING:
    from quakelake.params.association import VelocityParams

STANDARD_MODELS = ("ak135", "iasp91")


class VelocityModelError(BadInput, ValueError):
    """A velocity model file could not be read; the message names the file and the problem."""


def standard_model(name: str = "ak135", max_depth_km: float = 800.0) -> pd.DataFrame:
    """Return a standard Earth model (ObsPy TauP's ``ak135``/``iasp91`` tables) down to ``max_depth_km``.

    The global models' crust (5.8/6.5 km/s over a 35 km Moho in ak135) is the neutral choice for
    a network without a regional model: layered, with a Moho, instead of one 0-D velocity.

    Raises:
        VelocityModelError: for a name other than ``ak135`` or ``iasp91``.
    """
    if name not in STANDARD_MODELS:
        raise VelocityModelError(
            f"unknown standard model {name!r}; use one of {', '.join(STANDARD_MODELS)}"
        )
    import importlib.util

    # the table file alone: importing obspy.taup (and with it matplotlib) takes seconds
    spec = importlib.util.find_spec("obspy")
    assert spec is not None and spec.origin is not None  # obspy is a dependency
    path = Path(spec.origin).parent / "taup" / "data" / f"{name}.tvel"
    rows: list[list[float]] = []
    for line in path.read_text().splitlines()[2:]:  # two title lines
        parts = line.split()
        if len(parts) < 3:
            continue
        depth, vp, vs = (float(v) for v in parts[:3])
        if depth > max_depth_km and rows and rows[-1][0] >= max_depth_km:
            break
        rows.append([depth, vp, vs])
    return validate_velocity_model(pd.DataFrame(rows, columns=["depth", "vp", "vs"]), name)


def effective_velocities(model: pd.DataFrame, max_depth_km: float) -> tuple[float, float]:
    """Return the slowness-averaged (vp, vs) of ``model`` between the surface and ``max_depth_km``."""
    z = np.linspace(0.0, max(max_depth_km, 1.0), 200)
    vp, vs = velocities_at(validate_velocity_model(model), z)
    return float(1.0 / np.mean(1.0 / vp)), float(1.0 / np.mean(1.0 / vs))


def read_velocity_model(path: str | Path) -> pd.DataFrame:
    """Return the velocity model in ``path`` as points ``depth, vp, vs`` (km, km/s).

    Args:
        path: TauP ``.nd``, VELEST ``.mod``, CSV with ``depth,vp,vs`` columns, or a whitespace
            layer table (``depth vp [vp_grad] vs [vs_grad] ...``).

    Raises:
        VelocityModelError: naming the file and what is wrong with it.
    """
    path = Path(path)
    if not path.is_file():
        raise VelocityModelError(f"velocity model file {path} does not exist")
    text = path.read_text(errors="replace")
    suffix = path.suffix.lower()
    try:
        if suffix == ".nd":
            model = _read_nd(text)
        elif suffix == ".mod":
            model = _read_velest(text)
        elif suffix == ".csv" or "," in _first_data_line(text):
            model = _read_csv(path)
        else:
            model = _read_layers(text)
    except VelocityModelError as exc:
        raise VelocityModelError(f"velocity model file {path}: {exc}") from None
    except (ValueError, IndexError, KeyError) as exc:
        raise VelocityModelError(
            f"velocity model file {path} could not be parsed ({exc}); expected TauP .nd, "
            "VELEST .mod, CSV with depth,vp,vs or a layer table"
        ) from None
    return validate_velocity_model(model, str(path))


def _first_data_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return line
    return ""


def validate_velocity_model(model: pd.DataFrame, name: str = "velocity model") -> pd.DataFrame:
    """Return ``model`` checked and sorted: columns depth, vp, vs, positive velocities.

    Raises:
        VelocityModelError: naming the missing columns or the bad values.
    """
    missing = [c for c in ("depth", "vp", "vs") if c not in model.columns]
    if missing:
        raise VelocityModelError(f"{name} lacks columns {missing} (needs depth, vp, vs)")
    model = model[["depth", "vp", "vs"]].astype(float).reset_index(drop=True)
    if len(model) == 0:
        raise VelocityModelError(f"{name} has no layers")
    if (model[["vp", "vs"]] <= 0).any().any() or model.isna().any().any():
        raise VelocityModelError(f"{name} has missing or non-positive velocities")
    if (np.diff(model["depth"].to_numpy()) < 0).any():
        raise VelocityModelError(f"{name}: depths must not decrease")
    return model


def _read_nd(text: str) -> pd.DataFrame:
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue  # named discontinuity ("mantle", "outer-core") or blank line
        depth, vp, vs = (float(p) for p in parts[:3])
        if vs <= 0:
            break  # liquid outer core: beyond any local travel time
        rows.append([depth, vp, vs])
    if not rows:
        raise VelocityModelError("no 'depth vp vs' lines found")
    return pd.DataFrame(rows, columns=["depth", "vp", "vs"])


def _read_velest(text: str) -> pd.DataFrame:
    lines = text.splitlines()
    blocks: list[list[tuple[float, float]]] = []
    i = 1  # first line is the model title
    while i < len(lines):
        head = lines[i].split()
        i += 1
        if not head:
            continue
        n = int(head[0])
        layers = []
        for line in lines[i : i + n]:
            parts = line.split()
            layers.append((float(parts[1]), float(parts[0])))  # (depth of top, velocity)
        i += n
        blocks.append(layers)
        if len(blocks) == 2:
            break
    if len(blocks) != 2:
        raise VelocityModelError("expected a P block and an S block of layers")
    p, s = blocks
    depths = sorted({d for d, _ in p} | {d for d, _ in s})
    vp = _layer_value(p, depths)
    vs = _layer_value(s, depths)
    return _layers_to_points(depths, vp, vs)


def _layer_value(layers: list[tuple[float, float]], depths: list[float]) -> list[float]:
    out = []
    for d in depths:
        above = [v for top, v in layers if top <= d]
        out.append(above[-1] if above else layers[0][1])
    return out


def _layers_to_points(
    depths: list[float], vp: list[float], vs: list[float], vp_grad=None, vs_grad=None
) -> pd.DataFrame:
    """Constant (or gradient) layers with tops ``depths`` as points with discontinuities."""
    rows = []
    for k, top in enumerate(depths):
        rows.append((top, vp[k], vs[k]))
        if k + 1 < len(depths):
            bottom = depths[k + 1]
            gp = vp_grad[k] if vp_grad is not None else 0.0
            gs = vs_grad[k] if vs_grad is not None else 0.0
            rows.append((bottom, vp[k] + gp * (bottom - top), vs[k] + gs * (bottom - top)))
    return pd.DataFrame(rows, columns=["depth", "vp", "vs"])


# Vp/Vs of a Poisson solid, for P-only models (vs missing or zero, as SeisMonitor's vel1d_col.csv).
POISSON_VP_VS = 3.0**0.5


def _read_csv(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path)
    df.columns = [str(c).strip().lower() for c in df.columns]
    if "vp" in df.columns and (
        "vs" not in df.columns or (pd.to_numeric(df["vs"], errors="coerce").fillna(0) <= 0).all()
    ):
        df["vs"] = df["vp"].astype(float) / POISSON_VP_VS
    if {"vp_grad", "vs_grad"} <= set(df.columns):
        return _layers_to_points(
            df["depth"].tolist(),
            df["vp"].tolist(),
            df["vs"].tolist(),
            df["vp_grad"].tolist(),
            df["vs_grad"].tolist(),
        )
    return df


def _read_layers(text: str) -> pd.DataFrame:
    rows = [line.split() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not rows:
        raise VelocityModelError("no layer lines found")
    width = len(rows[0])
    values = np.array([[float(v) for v in r[:width]] for r in rows])
    if width >= 5:  # depth vp vp_grad vs vs_grad ...
        return _layers_to_points(
            list(values[:, 0]),
            list(values[:, 1]),
            list(values[:, 3]),
            list(values[:, 2]),
            list(values[:, 4]),
        )
    return _layers_to_points(list(values[:, 0]), list(values[:, 1]), list(values[:, 2]))


def velocities_at(model: pd.DataFrame, depths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (vp, vs) of ``model`` at ``depths``: linear between points, steps at repeats."""
    d = model["depth"].to_numpy()
    out = []
    for col in ("vp", "vs"):
        v = model[col].to_numpy()
        i = np.clip(np.searchsorted(d, depths, side="right") - 1, 0, len(d) - 1)
        j = np.minimum(i + 1, len(d) - 1)
        span = d[j] - d[i]
        frac = np.where(span > 0, (depths - d[i]) / np.where(span > 0, span, 1.0), 0.0)
        frac = np.clip(frac, 0.0, 1.0)
        out.append(v[i] + frac * (v[j] - v[i]))
    return out[0], out[1]


@dataclass
class TravelTimeTable:
    """P and S travel times on a regular (horizontal distance x depth) grid, in seconds.

    ``p[i, k]`` is the P time from a source at depth ``k * delta`` km to a receiver at the
    surface ``i * delta`` km away.
    """

    delta: float
    p: np.ndarray
    s: np.ndarray

    @property
    def max_distance_km(self) -> float:
        """Largest tabulated horizontal distance."""
        return (self.p.shape[0] - 1) * self.delta

    @property
    def max_depth_km(self) -> float:
        """Largest tabulated source depth."""
        return (self.p.shape[1] - 1) * self.delta

    @classmethod
    def from_model(
        cls, model: pd.DataFrame, delta: float, xdist: float, zdist: float
    ) -> TravelTimeTable:
        """Return the table of ``model`` solved with Pyrocko's eikonal solver.

        Raises:
            ImportError: when Pyrocko is absent, saying how to install it.
        """
        try:
            from pyrocko.modelling import eikonal
        except ImportError:
            raise ImportError(
                "1-D travel-time tables need pyrocko: pip install 'pyrocko==2026.6.2' "
                "(or use a 0-D velocity model)"
            ) from None
        model = validate_velocity_model(model)
        nx = int(round(xdist / delta)) + 1
        nz = int(round(zdist / delta)) + 1
        z = np.arange(nz) * delta
        vp, vs = velocities_at(model, z)
        tables = []
        for v in (vp, vs):
            speeds = np.ascontiguousarray(np.broadcast_to(v, (nx, nz)), dtype=float)
            times = -np.ones((nx, nz))
            times[0, 0] = 0.0
            eikonal.eikonal_solver_fmm_cartesian(speeds, times, delta)
            tables.append(times)
        return cls(delta=float(delta), p=tables[0], s=tables[1])

    def write_pyocto(self, path: str | Path) -> Path:
        """Write the table in PyOcto's binary layout (header nx, nz, delta; P then S times)."""
        path = Path(path)
        nx, nz = self.p.shape
        return atomic_write(
            path,
            struct.pack("iid", nx, nz, self.delta)
            + np.ascontiguousarray(self.p, dtype=np.float64).tobytes()
            + np.ascontiguousarray(self.s, dtype=np.float64).tobytes(),
        )

    @classmethod
    def read_pyocto(cls, path: str | Path) -> TravelTimeTable:
        """Read a table written in PyOcto's binary layout."""
        raw = Path(path).read_bytes()
        nx, nz, delta = struct.unpack("iid", raw[:16])
        values = np.frombuffer(raw[16:], dtype=np.float64)
        if values.size != 2 * nx * nz:
            raise VelocityModelError(f"travel-time table {path} is truncated")
        return cls(
            delta=delta,
            p=values[: nx * nz].reshape(nx, nz).copy(),
            s=values[nx * nz :].reshape(nx, nz).copy(),
        )

    def times(
        self, is_s: np.ndarray, distance_km: np.ndarray, depth_km: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return travel times and their derivatives by distance and by depth (bilinear).

        Distances and depths outside the grid are clamped to its edge.
        """
        nx, nz = self.p.shape
        fx = np.clip(np.asarray(distance_km, float) / self.delta, 0, nx - 1 - 1e-9)
        fz = np.clip(np.asarray(depth_km, float) / self.delta, 0, nz - 1 - 1e-9)
        i = fx.astype(int)
        k = fz.astype(int)
        ax = fx - i
        az = fz - k
        out = []
        for table in (self.p, self.s):
            t00 = table[i, k]
            t10 = table[i + 1, k]
            t01 = table[i, k + 1]
            t11 = table[i + 1, k + 1]
            t = (t00 * (1 - ax) + t10 * ax) * (1 - az) + (t01 * (1 - ax) + t11 * ax) * az
            dtdx = ((t10 - t00) * (1 - az) + (t11 - t01) * az) / self.delta
            dtdz = ((t01 - t00) * (1 - ax) + (t11 - t10) * ax) / self.delta
            out.append((t, dtdx, dtdz))
        is_s = np.asarray(is_s, bool)
        return tuple(
            np.where(is_s, s_val, p_val) for p_val, s_val in zip(out[0], out[1], strict=False)
        )  # type: ignore[return-value]


def model_fingerprint(model: pd.DataFrame, delta: float, xdist: float, zdist: float) -> str:
    """Return a short hash that names the table of ``model`` on that grid (and this code)."""
    from quakelake.lakehouse import cache

    points = np.round(model[["depth", "vp", "vs"]].to_numpy(float), 6).tobytes()
    grid = struct.pack("ddd", delta, xdist, zdist)
    return cache.content_key("traveltimes", TABLE_CACHE_VERSION, points, grid)[:16]


# Bump when the solver or the table layout changes (cached tables are then recomputed).
TABLE_CACHE_VERSION = "2"


def table_problem(
    table: TravelTimeTable, model: pd.DataFrame, delta: float, xdist: float, zdist: float
) -> str | None:
    """Return what is wrong with ``table`` as the travel times of ``model`` on that grid, or None.

    The grid must be the one asked for, every time finite, zero at the source, and between the
    straight-ray times at the model's fastest and slowest speeds (with two cells of slack).
    """
    nx, nz = int(round(xdist / delta)) + 1, int(round(zdist / delta)) + 1
    if table.p.shape != (nx, nz) or table.s.shape != (nx, nz) or table.delta != float(delta):
        return f"grid {table.p.shape} x {table.delta} km is not {(nx, nz)} x {delta} km"
    r = np.hypot(*np.meshgrid(np.arange(nx) * delta, np.arange(nz) * delta, indexing="ij"))
    for phase, times, speeds in (("P", table.p, model["vp"]), ("S", table.s, model["vs"])):
        lo, hi = float(speeds.min()), float(speeds.max())
        if not np.isfinite(times).all() or times[0, 0] != 0.0:
            return f"{phase} times are not finite or not zero at the source"
        slack = 2.0 * delta / lo
        if (times < r / hi - slack).any() or (times > r / lo + slack).any():
            return f"{phase} times outside the straight-ray bounds of the model"
    return None


def cached_table(
    model: pd.DataFrame,
    delta: float,
    xdist: float,
    zdist: float,
    cache_dir: str | Path | None = None,
) -> tuple[Path, TravelTimeTable]:
    """Return (PyOcto table file, table) for ``model``, computing it once per cache folder.

    A cached table is used only when its checksum (``<file>.sha256``, of the key and the file's
    bytes) matches and :func:`table_problem` finds nothing; otherwise it is recomputed with a
    warning.

    Args:
        model: velocity model points (depth, vp, vs).
        delta: grid spacing in km.
        xdist: largest horizontal distance in km (at least the search area's diagonal).
        zdist: largest depth in km.
        cache_dir: folder of the cached tables; the user's QuakeLake cache
            (``$XDG_CACHE_HOME/quakelake/traveltimes``) when None.
    """
    from quakelake.lakehouse import cache

    folder = Path(cache_dir) if cache_dir else cache.cache_dir("traveltimes")
    key = model_fingerprint(model, delta, xdist, zdist)
    path = folder / f"tt_{key}.pyocto"
    check = path.with_name(path.name + ".sha256")
    if path.is_file():
        try:
            raw = path.read_bytes()
            if check.read_text().strip() != cache.digest(key, raw):
                cache.reject(path, "its checksum does not match its content")
            else:
                table = TravelTimeTable.read_pyocto(path)
                problem = table_problem(table, model, delta, xdist, zdist)
                if problem is None:
                    return path, table
                cache.reject(path, problem)
        except (OSError, ValueError, struct.error, VelocityModelError) as exc:
            cache.reject(path, f"unreadable: {type(exc).__name__}")
    table = TravelTimeTable.from_model(model, delta, xdist, zdist)
    table.write_pyocto(path)
    cache.publish(lambda tmp: tmp.write_text(cache.digest(key, path.read_bytes())), check)
    return path, table


# ------------------------------------------------------------- the model a VelocityParams names
def model_points(params: VelocityParams) -> pd.DataFrame:
    """Return the layered model points (depth, vp, vs) of ``params.model_file`` or ``params.layers``.

    With ``params.vp_vs`` every S velocity is ``vp / vp_vs``.
    """
    if params.model_file is not None:
        m = read_velocity_model(params.model_file)
    else:
        m = validate_velocity_model(pd.DataFrame(params.layers, columns=["depth", "vp", "vs"]))
    return m if params.vp_vs is None else m.assign(vs=m["vp"] / params.vp_vs)


def layered_model(params: VelocityParams, max_depth_km: float = 800.0) -> pd.DataFrame:
    """Return the 1-D model: ``model_file``, ``layers`` or, when neither, the ``standard`` model."""
    if params.model_file is not None or params.layers:
        return model_points(params)
    m = standard_model(params.standard, max_depth_km)
    return m if params.vp_vs is None else m.assign(vs=m["vp"] / params.vp_vs)


def surface_velocities(params: VelocityParams) -> tuple[float, float]:
    """Return (vp, vs) at the surface, used for station elevation corrections."""
    if params.kind == "0d":
        if params.vp is None or params.vs is None:
            raise VelocityModelError("0-D velocity model without vp/vs: resolve the config first")
        return params.vp, params.vs
    m = model_points(params)
    top = m[m["depth"] <= 0.0]
    row = top.iloc[-1] if len(top) else m.iloc[0]
    return float(row["vp"]), float(row["vs"])
