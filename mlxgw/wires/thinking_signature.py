"""mlxgw's own signature on thinking it renders to an Anthropic client from another source (a local
model's `<think>`, an OpenAI-compatible server's reasoning, a Responses reasoning summary).

Anthropic clients send thinking blocks back with their signature, and Anthropic refuses any it did
not mint ("Invalid `signature` in `thinking` block"). With a signature mlxgw can recognise, such a
block is left out before Anthropic sees it, while Anthropic's own signatures still go back to it.
The signature is a fixed prefix and an HMAC-SHA256 of the thinking text under a key derived (HKDF)
from the home's secret key, so a block whose text was changed, or that another home signed, is not
taken for mlxgw's: it goes on as the client sent it, for the provider to judge.
"""

from __future__ import annotations

import base64
import functools
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mlxgw.vault import Vault

PREFIX = "mlxgw.thinking.v1:"
_INFO = b"mlxgw thinking signature v1"


def sign(text: str) -> str:
    return PREFIX + _mac(_key(Vault().secrets()[0]), text)


def is_ours(signature: object, text: object) -> bool:
    """Whether `signature` is the one mlxgw made for `text`, under the current secret (or, during a
    rotation, the next one)."""
    if not isinstance(signature, str) or not isinstance(text, str) or not signature.startswith(PREFIX):
        return False
    given = signature.removeprefix(PREFIX)
    return any(hmac.compare_digest(given, _mac(_key(secret), text)) for secret in Vault().secrets())


@functools.lru_cache(maxsize=4)
def _key(secret: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret)


def _mac(key: bytes, text: str) -> str:
    mac = crypto_hmac.HMAC(key, hashes.SHA256())
    mac.update(text.encode())
    return base64.urlsafe_b64encode(mac.finalize()).decode().rstrip("=")
