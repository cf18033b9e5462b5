"""One webhook POST: signed bytes to a checked URL, redirects never followed, every I/O failure an outcome.

The session must resolve names through shared/delivery/resolver.py's PinnedResolver, whose refusals come back as
`refused`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiohttp
from yarl import URL

from shared.delivery.targets import Refused
from shared.wire.retry_after import parse_retry_after

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryOutcome:
    status_code: int | None
    error: str | None
    retry_after: float | None = None
    refused: bool = False


async def deliver(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    body: bytes,
    timeout: float,
) -> DeliveryOutcome:
    """One POST attempt. 2xx is delivered; redirects are never followed. Never raises for I/O errors.

    `session` must resolve names through `outbound.PinnedResolver`, whose refusals come back as `refused`.
    """
    try:
        async with session.post(
            URL(url, encoded=True),  # as given: signed callback URLs (Logic Apps' sig=) must not be re-quoted
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            await response.content.read(64 * 1024)  # enough to reuse the connection; the body is not used
            ok = 200 <= response.status < 300
            return DeliveryOutcome(
                response.status,
                None if ok else f"receiver answered {response.status}",
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
    except Refused as exc:
        return DeliveryOutcome(None, exc.reason, refused=True)
    except TimeoutError:
        return DeliveryOutcome(None, f"no answer within {timeout:g} s")
    except aiohttp.ClientError as exc:
        return DeliveryOutcome(None, f"connection failed: {type(exc).__name__}")
