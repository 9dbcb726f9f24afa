"""Security headers on every response (OWASP Secure Headers Project, REST
Security Cheat Sheet), set by the `secure` library's ASGI middleware.

This service answers JSON, so it asks browsers for the strictest handling:
- `X-Content-Type-Options: nosniff`: a response is never run as a script or
  rendered as a page it does not declare itself to be;
- `Content-Security-Policy: frame-ancestors 'none'` and `X-Frame-Options:
  DENY` (for older browsers): no site may frame it (clickjacking);
- `Referrer-Policy: no-referrer`: its URLs never leak to other sites;
- `Strict-Transport-Security` when `COOKIE_SECURE` (HTTPS in production):
  browsers use HTTPS only for this host and its subdomains, for two years.

The CSP has no `default-src`: the interactive docs (`/docs`, `/redoc`, when
served) load their scripts from a CDN.
"""

from collections.abc import Mapping

from secure import (
    ContentSecurityPolicy,
    ReferrerPolicy,
    Secure,
    StrictTransportSecurity,
    XContentTypeOptions,
    XFrameOptions,
)

from .config import Settings

# Two years, the HSTS preload list's recommendation.
HSTS_MAX_AGE = 63_072_000


def security_headers(settings: Settings) -> Secure:
    """The headers every response gets, for `secure.middleware.SecureASGIMiddleware`."""
    return Secure(
        xcto=XContentTypeOptions().nosniff(),
        csp=ContentSecurityPolicy().frame_ancestors("'none'"),
        xfo=XFrameOptions().deny(),
        referrer=ReferrerPolicy().no_referrer(),
        hsts=StrictTransportSecurity().max_age(HSTS_MAX_AGE).include_subdomains()
        if settings.cookie_secure
        else None,
    )


def error_headers(settings: Settings) -> Mapping[str, str]:
    """The same headers for a 500, which is answered outside the middleware."""
    return security_headers(settings).headers
