"""The ASGI entry point: `uvicorn svc_async_mongo_session_ex.main:app`.

Settings are read here, at import, so a missing or invalid setting stops the
server at start-up, with one line naming the variable, rather than failing
at the first request.
"""

from pydantic import ValidationError

from svc_async_mongo_session_ex.app import create_app
from svc_async_mongo_session_ex.config import Settings, settings_error
from svc_async_mongo_session_ex.logs import configure_logging

try:
    settings = Settings()
except ValidationError as exc:
    # Printed as it is, without a traceback (which would show the values).
    raise SystemExit(settings_error(exc)) from None
configure_logging(settings.log_level)
app = create_app(settings)
