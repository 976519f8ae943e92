"""QuakeLake: ML phase picks and event catalogues in a DuckDB/Parquet lakehouse, run by Prefect."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("quakelake")
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"
