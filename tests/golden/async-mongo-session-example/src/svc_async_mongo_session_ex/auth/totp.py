"""The second factor's pieces: time-based one-time passwords (RFC 6238, with
`pyotp`), their secrets encrypted at rest, and recovery codes.

A secret is stored encrypted (Fernet: AES-128-CBC and HMAC-SHA256) under a
key derived by HKDF from each `SECRET_KEY`: the first encrypts, every one
decrypts, so rotating the keys keeps the secrets readable as long as the old
key is listed. A leaked database or dump without the key reveals no secret.

Recovery codes are stored only as their SHA-256: 64 random bits each, too
many to try offline.
"""

import base64
import hashlib
import hmac
import secrets

import pyotp
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..config import Settings

# The name authenticator apps show beside the account.
ISSUER = "svc async mongo session ex"
# Seconds per time step (RFC 6238's default, which every app uses).
STEP = 30
# A code of the step before or after the server's is accepted too: clocks drift.
DRIFT = 1
RECOVERY_CODES = 10
# Seconds a login whose password was right waits for its code.
PENDING_LOGIN_LIFETIME = 300


def _fernet(key: str) -> Fernet:
    """The encryption key of one `SECRET_KEY` (a key of its own: nothing
    made with it is valid anywhere else)."""
    kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"totp secrets")
    return Fernet(base64.urlsafe_b64encode(kdf.derive(key.encode())))


def _box(settings: Settings) -> MultiFernet:
    """Encrypts with the first `SECRET_KEY`'s key, decrypts with any one's."""
    return MultiFernet([_fernet(key) for key in settings.secret_key])


def encrypt_secret(settings: Settings, secret: str) -> str:
    return _box(settings).encrypt(secret.encode()).decode()


def decrypt_secret(settings: Settings, stored: str) -> str | None:
    """The secret, or None when no `SECRET_KEY` listed now encrypted it."""
    try:
        return _box(settings).decrypt(stored.encode()).decode()
    except InvalidToken:
        return None


def new_secret() -> str:
    """160 random bits, in base32 (RFC 4226's recommended length)."""
    return pyotp.random_base32(32)


def otpauth_uri(secret: str, email: str) -> str:
    """The `otpauth://` URI authenticator apps read (as a QR code)."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def is_totp_code(code: str) -> bool:
    """Six ASCII digits: a TOTP code; anything else is taken for a recovery code."""
    return len(code) == 6 and code.isascii() and code.isdigit()


def matching_step(secret: str, code: str, now: float) -> int | None:
    """The time step whose code `code` is, within `DRIFT` steps of `now`."""
    totp = pyotp.TOTP(secret)
    current = int(now // STEP)
    for step in range(current - DRIFT, current + DRIFT + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def new_recovery_codes() -> list[str]:
    """`RECOVERY_CODES` codes of 64 random bits, as `xxxx-xxxx-xxxx-xxxx`."""
    return ["-".join(secrets.token_hex(2) for _ in range(4)) for _ in range(RECOVERY_CODES)]


def recovery_code_hash(code: str) -> str:
    """What is stored of a recovery code; case, spaces and dashes do not count."""
    plain = "".join(code.split()).replace("-", "").lower()
    return hashlib.sha256(plain.encode()).hexdigest()
