"""The ASGI entry point: `uvicorn svc_async_redis_mongo_none_noex.main:app`.

Settings are read here, at import, so a missing `SECRET_KEY` in production
stops the server at start-up rather than at the first request.
"""

from svc_async_redis_mongo_none_noex.app import create_app

app = create_app()
