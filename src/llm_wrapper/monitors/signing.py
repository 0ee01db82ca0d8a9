"""Standard Webhooks signature checks for Parallel's monitor notifications.

Written here rather than with `standardwebhooks.Webhook.verify` because Parallel's
secret comes in two forms (its own examples use the string's bytes as the HMAC
key; Standard Webhooks decodes a `whsec_<base64>` secret) and the check needs an
injectable clock; the library handles only the second form and the wall clock.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

TOLERANCE_SECONDS = 300
PREFIX = "whsec_"


class BadSignature(Exception):
    """The delivery is not provably from Parallel (the message says why)."""


def signing_keys(secret: str) -> list[bytes]:
    """Every HMAC key the secret may stand for: its UTF-8 bytes, and for `whsec_…` the decoded key."""
    keys = [secret.encode()]
    if secret.startswith(PREFIX):
        try:
            decoded = base64.b64decode(secret[len(PREFIX):] + "==")
        except (binascii.Error, ValueError):
            decoded = b""
        if decoded:
            keys.append(decoded)
    return keys


def sign(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` signature (the fakes use it to sign deliveries)."""
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None) -> str:
    """Check `webhook-id`, `webhook-timestamp` (±5 minutes) and `webhook-signature` over the raw body.

    Returns the webhook id; raises BadSignature.
    """
    webhook_id = headers.get("webhook-id")
    stamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not (webhook_id and stamp and signatures):
        raise BadSignature("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        timestamp = int(stamp.strip())
    except ValueError:
        raise BadSignature("webhook-timestamp is not a Unix time") from None
    now = time.time() if now is None else now
    if abs(now - timestamp) > TOLERANCE_SECONDS:
        raise BadSignature("webhook-timestamp is more than 5 minutes away from now")
    given: list[bytes] = []
    for entry in signatures.split():
        version, _, value = entry.partition(",")
        if version != "v1" or not value:
            continue
        try:
            given.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    for key in signing_keys(secret):
        expected = base64.b64decode(sign(key, webhook_id, timestamp, body)[3:])
        # compare against every entry (no early exit on the first match) to keep timing flat
        if sum(hmac.compare_digest(expected, candidate) for candidate in given):
            return webhook_id
    raise BadSignature("no valid signature")
