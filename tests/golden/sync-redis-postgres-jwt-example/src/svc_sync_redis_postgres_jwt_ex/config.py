"""Settings, read from the environment (and a `.env` file) by pydantic-settings."""

import ipaddress
import secrets
from typing import Annotated, Literal
from urllib.parse import urlsplit

from fastapi import Depends, Request
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .database_url import DEFAULT_DATABASE_URL, normalize_database_url
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
    # Connections kept per process. Requests wait for one in the event loop
    # (`db.reserve_connection`) before taking a worker thread, and there are
    # more threads than connections (`db.running`): a smaller pool queues
    # requests, it cannot deadlock.
    database_pool_size: int = Field(default=40, gt=0)
    # True when DATABASE_URL names a PgBouncer in transaction pooling mode:
    # no server-side prepared statements then (see `engine.create_db_engine`).
    database_pgbouncer: bool = False
    # One server, or redis+sentinel://host:26379,.../service/0, or
    # redis+cluster://host:6379,... (see the README, "Redis Sentinel / Cluster").
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Every session key starts with this, so several services can share a Redis.
    redis_prefix: str = "svc_sync_redis_postgres_jwt_ex:"
    # Comma-separated: the first key signs, every key verifies (rotation).
    secret_key: Annotated[list[str], NoDecode] = []
    session_idle_timeout: int = Field(default=1800, gt=0)
    session_absolute_timeout: int = Field(default=43200, gt=0)
    access_token_lifetime: int = Field(default=900, gt=0)
    # Comma-separated origins (`https://app.example.com`) of front ends served
    # elsewhere: CORS lets their scripts call this API. Empty: CORS is off.
    allowed_origins: Annotated[list[str], NoDecode] = []
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Bytes: bigger request bodies get 413; bigger session data too, and is not stored.
    max_body_size: int = Field(default=1_048_576, gt=0)
    # Seconds a client gets to send a request's body, from its first read: 408 past it.
    request_body_timeout: float = Field(default=30.0, gt=0)
    session_max_size: int = Field(default=16_384, gt=0)
    # In each window: logins (right or wrong) per client address, failed logins
    # per account from one client address, and from all addresses together.
    login_attempts_per_client: int = Field(default=100, gt=0)
    login_attempts_per_account: int = Field(default=5, gt=0)
    login_attempts_per_account_all_clients: int = Field(default=100, gt=0)
    login_attempts_window: int = Field(default=900, gt=0)
    # Registrations per client address in each window (seconds).
    registrations_per_client: int = Field(default=10, gt=0)
    registration_window: int = Field(default=3600, gt=0)
    # Password hashes (Argon2: ~0.2 s of CPU, 64 MiB each) run at once per
    # process; a request waits this many seconds for a turn, then gets 503.
    password_hash_concurrency: int = Field(default=1, gt=0)
    password_hash_wait: float = Field(default=1.0, gt=0)
    # Mail (`mail/`): smtp://user:pass@host:port (STARTTLS when the server offers
    # it) or smtps://… (TLS from the start); unset: mails go to the log (dev, test).
    smtp_url: str | None = None
    mail_from: str = "noreply@localhost"
    # The base of the links in mails: where users reach this service.
    public_url: str = "http://127.0.0.1:8000"
    # Unverified accounts cannot log in (403).
    require_verified_email: bool = False
    # Seconds a password reset link works.
    password_reset_token_lifetime: int = Field(default=3600, gt=0)
    # Password reset requests per address, and per client address, in each
    # `REGISTRATION_WINDOW`.
    password_resets_per_address: int = Field(default=5, gt=0)
    password_resets_per_client: int = Field(default=20, gt=0)
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
        return normalize_database_url(value)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        parse_redis_url(value)
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: str | None) -> str | None:
        parts = urlsplit(value or "")
        if value and (parts.scheme not in {"smtp", "smtps"} or not parts.hostname):
            msg = "SMTP_URL: must look like smtp://user:password@host:587 or smtps://host:465"
            raise ValueError(msg)
        return value or None

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            msg = "PUBLIC_URL: must look like https://app.example.com"
            raise ValueError(msg)
        return value.rstrip("/")

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
            if self.smtp_url is None:
                msg = "SMTP_URL: required when ENVIRONMENT is prod (mails would go nowhere)"
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


async def settings_dependency(request: Request) -> Settings:
    """`get_settings` for `Depends`: `async`, since FastAPI runs a plain `def`
    dependency in a worker thread, a costly hop for no I/O."""
    return get_settings(request)


SettingsDep = Annotated[Settings, Depends(settings_dependency)]
