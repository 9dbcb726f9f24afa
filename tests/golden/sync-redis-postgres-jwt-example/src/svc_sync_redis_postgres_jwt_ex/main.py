"""The ASGI entry point: `uvicorn svc_sync_redis_postgres_jwt_ex.main:app`.

Settings are read here, at import, so a missing or invalid setting stops the
server at start-up, with one line naming the variable, rather than failing
at the first request.
"""

import sys

from pydantic import ValidationError
from uvicorn.config import STARTUP_FAILURE

from .app import create_app
from .config import Settings, settings_error
from .logs import configure_logging

try:
    settings = Settings()
except ValidationError as exc:
    # One line, without the traceback (which would show the values). Exit
    # status 3 is uvicorn's "failed to start": with `--workers` its supervisor
    # then stops, instead of restarting workers that would fail the same way.
    print(settings_error(exc), file=sys.stderr)
    raise SystemExit(STARTUP_FAILURE) from None
configure_logging(settings.log_level)
app = create_app(settings)
