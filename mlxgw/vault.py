"""Fernet encryption of the API keys kept in the store.

The key lives in `secret.key` (mode 0600 from creation) or comes from $MLXGW_SECRET_KEY. During a
rotation the new key is first written to `secret.key.new`; readers accept both, so a rotation cut
short at any point leaves every credential readable.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from mlxgw import paths
from mlxgw.errors import CredentialError
from mlxgw.fsutil import create_private

ENV = "MLXGW_SECRET_KEY"


class Vault:
    def __init__(self, key_path: Path | None = None) -> None:
        self.key_path = key_path or paths.secret_key_path()
        self.pending_path = self.key_path.with_name(self.key_path.name + ".new")

    @property
    def from_env(self) -> bool:
        return bool(os.environ.get(ENV))

    def _keys(self) -> list[bytes]:
        if self.from_env:
            return [os.environ[ENV].encode()]
        if not self.key_path.exists():
            create_private(self.key_path, Fernet.generate_key())
        keys = [self.key_path.read_bytes().strip()]
        if self.pending_path.exists():
            keys.insert(0, self.pending_path.read_bytes().strip())
        return keys

    def secrets(self) -> list[bytes]:
        """The secret keys, newest first (two during a rotation), for keys derived from them."""
        return self._keys()

    def _fernet(self) -> MultiFernet:
        try:
            return MultiFernet([Fernet(k) for k in self._keys()])
        except ValueError:
            raise CredentialError(f"the secret key in {self._where()} is not a valid Fernet key") from None

    def _where(self) -> str:
        return f"${ENV}" if self.from_env else str(self.key_path)

    def encrypt(self, plaintext: str) -> str:
        return self._fernet().encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str, name: str) -> str:
        try:
            return self._fernet().decrypt(token.encode()).decode()
        except InvalidToken:
            raise CredentialError(
                f"cannot decrypt credential {name}: wrong or missing secret key ({self._where()})"
            ) from None

    def begin_rotation(self) -> MultiFernet:
        """Write the next key beside the current one; returns a MultiFernet that re-encrypts to it."""
        if self.from_env:
            raise CredentialError(f"the secret key comes from ${ENV}; change that variable to rotate")
        old = self._keys()
        if not self.pending_path.exists():
            create_private(self.pending_path, Fernet.generate_key())
        new = self.pending_path.read_bytes().strip()
        return MultiFernet([Fernet(new)] + [Fernet(k) for k in old if k != new])

    def finish_rotation(self) -> None:
        os.replace(self.pending_path, self.key_path)
