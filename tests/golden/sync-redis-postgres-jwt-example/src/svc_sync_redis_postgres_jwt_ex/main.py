"""The ASGI entry point: `uvicorn svc_sync_redis_postgres_jwt_ex.main:app`.

Settings are read here, at import, so a missing `SECRET_KEY` in production
stops the server at start-up rather than at the first request.
"""

from svc_sync_redis_postgres_jwt_ex.app import create_app

app = create_app()
