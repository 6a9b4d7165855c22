"""Encryption at rest for gift card codes and webhook secrets: Fernet, with key rotation (MultiFernet).

ENCRYPTION_KEYS is a list of Fernet keys; the first encrypts, all decrypt. To rotate: prepend a new key,
run `manage.py encryption_rotate` (re-encrypts with the first key), then drop the old key.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


@lru_cache(maxsize=1)
def _fernet() -> MultiFernet:
    keys = settings.ENCRYPTION_KEYS
    if not keys:
        raise RuntimeError("ENCRYPTION_KEYS is empty; set at least one Fernet key")
    return MultiFernet([Fernet(key) for key in keys])


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise RuntimeError("cannot decrypt: no configured ENCRYPTION_KEYS entry matches") from exc


def rotate(token: str) -> str:
    """Re-encrypt under the primary key (no-op in meaning; new ciphertext)."""
    return _fernet().rotate(token.encode()).decode()


def mask(code: str, visible: int = 4) -> str:
    """Show only the last `visible` characters: `••••••1234`."""
    return "•" * max(0, min(len(code) - visible, 12)) + code[-visible:] if code else ""
