"""sessionforge: generate FastAPI services with server-side sessions, a database and auth."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sessionforge")
except PackageNotFoundError:  # running from a plain checkout, not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
