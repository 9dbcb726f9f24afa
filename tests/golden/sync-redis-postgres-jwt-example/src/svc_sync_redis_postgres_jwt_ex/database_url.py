"""The database URL: its default and its check (`Settings.database_url`)."""

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DRIVER = "postgresql+psycopg"
DEFAULT_DATABASE_URL = f"{DRIVER}://postgres:postgres@127.0.0.1:5432/app"


def normalize_database_url(url: str) -> str:
    """Give a plain `postgresql://` URL the driver this sync service needs."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        # SQLAlchemy's message quotes the URL, password included.
        msg = "DATABASE_URL is not a URL like postgresql://user:password@host/database"
        raise ValueError(msg) from None
    if parsed.drivername in {"postgresql", "postgres"}:
        return parsed.set(drivername=DRIVER).render_as_string(hide_password=False)
    if parsed.drivername != DRIVER:
        msg = f"DATABASE_URL uses {parsed.drivername!r}; this service needs {DRIVER!r}"
        raise ValueError(msg)
    return url
