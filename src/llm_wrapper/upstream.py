"""Talking to a provider: one POST, and one mapping from what can go wrong on the wire to a `GatewayError`.

    a timeout                               -> UpstreamTimeout      504
    a refused, reset or broken connection   -> UpstreamUnreachable  502
    an error status                         -> UpstreamError        the provider's status
    401 or 403: our key was refused         -> ProviderAuthFailed   502 (never the caller's 401)

`upstream_failures` is the one place transport exceptions become gateway
errors: the chat path uses it with aiohttp's exceptions, the Parallel monitor
client with its SDK's (which are not aiohttp's).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp

from .errors import ProviderAuthFailed, UpstreamError, UpstreamTimeout, UpstreamUnreachable

log = logging.getLogger(__name__)

Failures = tuple[type[BaseException], ...]

TIMEOUTS: Failures = (TimeoutError,)
BROKEN: Failures = (aiohttp.ClientError,)


@contextmanager
def upstream_failures(
    provider: str,
    broken: str = "is unreachable",
    *,
    late: str = "did not answer in time",
    timeouts: Failures = TIMEOUTS,
    broken_by: Failures = BROKEN,
) -> Iterator[None]:
    """Turn a transport failure inside the block into the gateway error a client should see.

    `broken` and `late` finish the sentence that starts with the provider's name,
    so the message says at which step it failed.
    """
    try:
        yield
    except timeouts:
        raise UpstreamTimeout(f"{provider} {late}.") from None
    except broken_by as exc:
        raise UpstreamUnreachable(f"{provider} {broken} ({type(exc).__name__}).") from None


async def post(
    session: aiohttp.ClientSession, provider: str, url: str, payload: bytes, *, key_env: str
) -> aiohttp.ClientResponse:
    """POST `payload`; returns a 2xx-3xx response with its body unread, or raises the mapped error.

    `key_env` names the variable holding the provider's key, for the message when it is refused.
    """
    with upstream_failures(provider):
        response = await session.post(url, data=payload)
    if response.status < 400:
        return response
    try:
        body = await response.read()
    except (TimeoutError, aiohttp.ClientError):
        body = b""
    finally:
        response.release()
    if response.status in (401, 403):
        # The provider's text is not passed on: it may echo the key.
        log.error("%s refused the gateway's API key (HTTP %s): check %s", provider, response.status, key_env)
        raise ProviderAuthFailed(
            f"{provider} refused the gateway's API key (HTTP {response.status}); "
            f"the operator must set a valid {key_env}."
        )
    error = UpstreamError.from_body(provider, response.status, body)
    if "Retry-After" in response.headers:
        error.headers["Retry-After"] = response.headers["Retry-After"]
    raise error


async def read_whole(provider: str, response: aiohttp.ClientResponse) -> bytes:
    """The whole body of a 2xx answer; raises the mapped error if it does not arrive in time or whole."""
    try:
        with upstream_failures(provider, "broke off the answer"):
            return await response.read()
    finally:
        response.release()


async def first_bytes(provider: str, response: aiohttp.ClientResponse) -> bytes:
    """The first bytes of a streamed answer (b"" if it ended at once), or the mapped error with the
    response closed: until they arrive, nothing has reached the client and another attempt may follow."""
    try:
        with upstream_failures(provider, "broke off the stream before it began", late="sent nothing in time"):
            return await response.content.readany()
    except BaseException:
        response.close()
        raise
