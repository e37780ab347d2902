"""The Mistral API key: ``MISTRAL_API_KEY``, else the one saved in the OS keychain.

`keyring` (macOS Keychain, Windows Credential Locker, the Secret Service on Linux) keeps it, as
service `SERVICE`, user ``mistral``. Tests choose keyring's backend with
``PYTHON_KEYRING_BACKEND`` so they never touch the real keychain. The key is never printed,
logged, stored in history or written to an export: errors here name where to put it, not it.
"""

from __future__ import annotations

import os

from magimac.core.errors import MagimacError

ENV = "MISTRAL_API_KEY"
SERVICE = "magimac"


class ApiKeyError(MagimacError):
    """No key, or the keychain cannot be used; one line saying what to do."""


def _keyring():
    import keyring  # noqa: PLC0415  (only when a key is needed)
    import keyring.errors  # noqa: PLC0415

    return keyring, keyring.errors


def saved_key(provider: str = "mistral") -> str | None:
    """The key saved with `save_key`, or None (also when no keychain is available)."""
    keyring, errors = _keyring()
    try:
        return keyring.get_password(SERVICE, provider) or None
    except errors.KeyringError:
        return None


def api_key(provider: str = "mistral") -> str:
    """The key to send: ``MISTRAL_API_KEY`` when set, else the saved one.

    Raises:
        ApiKeyError: neither is there.
    """
    key = os.environ.get(ENV, "").strip() or saved_key(provider)
    if not key:
        raise ApiKeyError(f"no Mistral API key: set {ENV}, or save one with `magimac key set mistral`")
    return key


def save_key(key: str, provider: str = "mistral") -> None:
    """Save ``key`` in the OS keychain.

    Raises:
        ApiKeyError: an empty key, or no keychain to save it in (names `ENV` instead).
    """
    if not key.strip():
        raise ApiKeyError("empty key: paste the key from console.mistral.ai, or press Ctrl+C")
    keyring, errors = _keyring()
    try:
        keyring.set_password(SERVICE, provider, key.strip())
    except errors.KeyringError as e:
        raise ApiKeyError(f"cannot save the key in the keychain ({type(e).__name__}); "
                        f"set {ENV} in your shell instead") from None


def remove_key(provider: str = "mistral") -> bool:
    """Delete the saved key; False when none was saved.

    Raises:
        ApiKeyError: the keychain cannot be used.
    """
    keyring, errors = _keyring()
    try:
        keyring.delete_password(SERVICE, provider)
    except errors.PasswordDeleteError:
        return False
    except errors.KeyringError as e:
        raise ApiKeyError(f"cannot use the keychain ({type(e).__name__})") from None
    return True
