"""API credentials that cannot leak through ``repr``, ``str`` or f-strings.

The secret is reachable only through the explicit :attr:`Credentials.secret_key`
attribute (used by the signer); every textual rendering shows a short
fingerprint of the API key and masks the secret entirely.
"""

from __future__ import annotations

from laptop_agents.core.secrets_mask import MASK, fingerprint


class Credentials:
    """A Bitunix API key pair."""

    __slots__ = ("_api_key", "_secret_key")

    def __init__(self, api_key: str, secret_key: str) -> None:
        if not api_key or not api_key.strip():
            raise ValueError("api_key must not be empty")
        if not secret_key or not secret_key.strip():
            raise ValueError("secret_key must not be empty")
        self._api_key = api_key.strip()
        self._secret_key = secret_key.strip()

    @property
    def api_key(self) -> str:
        return self._api_key

    @property
    def secret_key(self) -> str:
        return self._secret_key

    @property
    def fingerprint(self) -> str:
        """Enough of the API key to tell two keys apart in logs (``***abcd``)."""
        return fingerprint(self._api_key)

    def secrets(self) -> tuple[str, str]:
        """Both values, for scrubbing text that might echo them back."""
        return (self._api_key, self._secret_key)

    def __repr__(self) -> str:
        return f"Credentials(api_key='{self.fingerprint}', secret_key='{MASK}')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return format(repr(self), spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Credentials):
            return NotImplemented
        return self._api_key == other._api_key and self._secret_key == other._secret_key

    def __hash__(self) -> int:
        return hash((self._api_key, self._secret_key))

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would write the secret to wherever the pickle goes
        # (state files, multiprocessing queues): refuse loudly instead.
        raise TypeError("Credentials cannot be pickled")
