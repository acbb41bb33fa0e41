"""Signed impression ids: nobody can forge feedback for a slate that was never served.

An id is ``<serial hex>.<issued ms hex>.<tag>`` with ``tag`` = the first 16 bytes of
HMAC-SHA256(key, "serial.issued_ms") in URL-safe base64 (RFC 2104; 128-bit tags as in
NIST SP 800-107). The key comes from ``SERENDIP_SECRET`` or a random key generated once into the
state directory with mode 0600. Because the issue time is signed, an expired id is recognised
(410) even after its pending record is gone; anything that does not verify is unknown (404).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

KEY_FILE = "impression.key"
TAG_BYTES = 16


class InvalidImpressionId(LookupError):
    """The id is malformed or its signature does not verify (HTTP 404)."""


@dataclass(frozen=True)
class ImpressionRef:
    """What a verified id says: which slate (serial) and when it was issued."""

    serial: int
    issued_ms: int


def load_key(state_dir: Path, secret: str | None = None) -> bytes:
    """The HMAC key: ``secret`` if given, else ``state_dir/impression.key`` (created 0600 on first use)."""
    if secret:
        return secret.encode("utf-8")
    path = Path(state_dir) / KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes()
        if len(key) < 32:
            raise ValueError(f"{path}: HMAC key is {len(key)} bytes; delete the file to generate a new one") from None
        return key
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_bytes(32))
        f.flush()
        os.fsync(f.fileno())
    return path.read_bytes()


class ImpressionSigner:
    """Issues and verifies impression ids with one HMAC key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError(f"HMAC key has {len(key)} bytes; use at least 16 (set SERENDIP_SECRET to a long random string)")
        self._key = key

    def _tag(self, serial: int, issued_ms: int) -> str:
        mac = hmac.new(self._key, f"{serial}.{issued_ms}".encode(), hashlib.sha256).digest()[:TAG_BYTES]
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    def issue(self, serial: int, issued_ms: int) -> str:
        """The signed id of slate ``serial`` issued at ``issued_ms`` (Unix milliseconds)."""
        return f"{serial:x}.{issued_ms:x}.{self._tag(serial, issued_ms)}"

    def verify(self, impression_id: str) -> ImpressionRef:
        """Return the slate an id refers to, or raise ``InvalidImpressionId``."""
        parts = impression_id.split(".")
        if len(parts) != 3 or not all(parts) or max(len(parts[0]), len(parts[1])) > 16:
            raise InvalidImpressionId("impression id is malformed")
        try:
            serial, issued_ms = int(parts[0], 16), int(parts[1], 16)
        except ValueError:
            raise InvalidImpressionId("impression id is malformed") from None
        if parts[0] != f"{serial:x}" or parts[1] != f"{issued_ms:x}":
            raise InvalidImpressionId("impression id is malformed")
        # compare bytes: compare_digest raises TypeError on a str with non-ASCII characters
        if not hmac.compare_digest(parts[2].encode("utf-8", "surrogatepass"), self._tag(serial, issued_ms).encode()):
            raise InvalidImpressionId("impression id signature does not verify")
        return ImpressionRef(serial=serial, issued_ms=issued_ms)
