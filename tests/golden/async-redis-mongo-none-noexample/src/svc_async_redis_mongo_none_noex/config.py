"""Settings, read from the environment (and a `.env` file) by pydantic-settings."""

import ipaddress
import secrets
from typing import Annotated, Literal
from urllib.parse import urlsplit

from fastapi import Request
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .database_url import DEFAULT_DATABASE_URL, check_database_url
from .sessions.redis_client import parse_redis_url

# HMAC-SHA256 keys shorter than the hash give less than its strength.
MIN_SECRET_KEY_BYTES = 32
# A placeholder (`aaaa…`, `abab…`) has fewer. Random keys of 32 characters: a
# URL-safe one practically never does, about 1 hex key in 10,000 does (make another).
MIN_SECRET_KEY_DISTINCT_CHARACTERS = 10


class Settings(BaseSettings):
    """Every setting comes from an environment variable of the same name."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Literal["dev", "test", "prod"] = "prod"
    # Serve /docs, /redoc and /openapi.json; unset: everywhere but in prod.
    api_docs: bool | None = None
    database_url: str = DEFAULT_DATABASE_URL
    # One server, or redis+sentinel://host:26379,.../service/0, or
    # redis+cluster://host:6379,... (see the README, "Redis Sentinel / Cluster").
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Every session key starts with this, so several services can share a Redis.
    redis_prefix: str = "svc_async_redis_mongo_none_noex:"
    # Comma-separated: the first key signs, every key verifies (rotation).
    secret_key: Annotated[list[str], NoDecode] = []
    session_idle_timeout: int = Field(default=1800, gt=0)
    session_absolute_timeout: int = Field(default=43200, gt=0)
    cookie_secure: bool = True
    # Comma-separated origins (`https://app.example.com`) of front ends served
    # elsewhere: they may send state-changing requests (`cross_site.py`), and CORS
    # lets their scripts call this API with cookies. Empty: CORS is off.
    allowed_origins: Annotated[list[str], NoDecode] = []
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Bytes: bigger request bodies get 413; bigger session data too, and is not stored.
    max_body_size: int = Field(default=1_048_576, gt=0)
    # Seconds a client gets to send a request's body, from its first read: 408 past it.
    request_body_timeout: float = Field(default=30.0, gt=0)
    session_max_size: int = Field(default=16_384, gt=0)
    # The production server (`__main__.py`): where it listens, its worker
    # processes, and the proxies (IP addresses or networks, comma-separated)
    # whose `X-Forwarded-For`/`-Proto` it trusts; empty: none, clients are their peers.
    host: str = "127.0.0.1"
    port: int = Field(default=8000, gt=0, lt=65536)
    web_concurrency: int = Field(default=1, gt=0)
    forwarded_allow_ips: Annotated[list[str], NoDecode] = []
    # Seconds a client gets to send a request's headers; an idle keep-alive
    # connection is closed after as long.
    request_header_timeout: int = Field(default=10, gt=0)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return check_database_url(value)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        parse_redis_url(value)
        return value

    @field_validator("secret_key", "allowed_origins", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            parts = urlsplit(origin)
            if parts.scheme not in {"http", "https"} or not parts.netloc or parts.path.strip("/"):
                # `*` too: with credentials, any site could act as its visitors.
                msg = "ALLOWED_ORIGINS must list origins like https://app.example.com"
                raise ValueError(msg)
        return [origin.rstrip("/").lower() for origin in value]

    @field_validator("forwarded_allow_ips", mode="before")
    @classmethod
    def _proxies(cls, value: object) -> object:
        if isinstance(value, str):
            value = [entry.strip() for entry in value.split(",") if entry.strip()]
        if not isinstance(value, list):
            return value
        proxies = []
        for entry in value:
            try:
                network = ipaddress.ip_network(str(entry), strict=False)
            except ValueError:
                # `*` too: anyone could then forge their address.
                msg = "FORWARDED_ALLOW_IPS must list IP addresses or networks like 10.0.0.0/24"
                raise ValueError(msg) from None
            proxies.append(str(network) if "/" in str(entry) else str(network.network_address))
        return proxies

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _require_secret_key(self) -> "Settings":
        if self.environment == "prod":
            if not self.secret_key:
                msg = "SECRET_KEY: required when ENVIRONMENT is prod"
                raise ValueError(msg)
            if any(len(key.encode()) < MIN_SECRET_KEY_BYTES for key in self.secret_key):
                msg = f"SECRET_KEY: every key must be at least {MIN_SECRET_KEY_BYTES} bytes long"
                raise ValueError(msg)
            if any(len(set(key)) < MIN_SECRET_KEY_DISTINCT_CHARACTERS for key in self.secret_key):
                msg = (
                    f"SECRET_KEY: every key must have at least {MIN_SECRET_KEY_DISTINCT_CHARACTERS}"
                    " distinct characters (a placeholder is not a key)"
                )
                raise ValueError(msg)
        elif not self.secret_key:
            # dev and test: a throwaway key, valid for this process only.
            self.secret_key = [secrets.token_urlsafe(32)]
        return self

    @property
    def docs_enabled(self) -> bool:
        return self.api_docs if self.api_docs is not None else self.environment != "prod"


def settings_error(exc: ValidationError) -> str:
    """One line naming each bad variable and what to do, never its value
    (it may be a secret): what start-up prints instead of a traceback."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        name = str(error["loc"][0]).upper() if error["loc"] else ""
        if not message.startswith(name):
            message = f"{name}: {message}"
        problems.append(message)
    hint = "set it in the environment or in .env (see .env.example)"
    if any(problem.startswith("SECRET_KEY") for problem in problems):
        hint += '; a new key: python -c "import secrets; print(secrets.token_urlsafe(32))"'
        hint += " (or ENVIRONMENT=dev for local work)"
    return f"Invalid settings: {'; '.join(problems)}. Fix: {hint}"


def get_settings(request: Request) -> Settings:
    """The application's settings, loaded once by `app.create_app`."""
    settings: Settings = request.app.state.settings
    return settings
