"""The database URL: its default and its check (`Settings.database_url`)."""

from urllib.parse import urlsplit

# The compose.yaml service; directConnection because its replica set member
# is named for the compose network.
DEFAULT_DATABASE_URL = "mongodb://127.0.0.1:27017/app?directConnection=true"


def check_database_url(url: str) -> str:
    """A `mongodb://` (or `mongodb+srv://`) URL that names its database."""
    parts = urlsplit(url)
    if parts.scheme not in {"mongodb", "mongodb+srv"} or not parts.path.strip("/"):
        msg = "DATABASE_URL must look like mongodb://host:port/database"
        raise ValueError(msg)
    return url
