"""Fixtures of the online tests: the API stand-in and an in-memory keychain
(`magimac.testing.api_standin`)."""

from magimac.testing.api_standin import api, closed_port_url, memory_keyring  # noqa: F401
