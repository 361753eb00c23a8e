"""When to retry a SignalR Service REST call, and how long to wait.

The status rules start from Microsoft's Management SDK (Azure/azure-signalr
``src/Microsoft.Azure.SignalR.Management/DependencyInjectionExtensions.cs``: sends retried
on status > 500 only, other calls on >= 500 or 408; ``Resilient/RetryHttpMessageHandler.cs``)
and differ from it on purpose where a retry cannot duplicate a delivery:

* **Message sends** (``:send`` to all / a user / a group / a connection) are retried only
  when the service surely did not deliver: a status **above** 500 (502, 503, 504, ...),
  ``429``, or a transport error before an answer arrived. A ``500`` is *not* retried: the
  service answers 500 when its own internal call timed out, and the message may have gone
  out. For the same reason a *read* timeout on a send is not retried either.
* **Every other call** (group membership, close, existence checks) is idempotent and is also
  retried on ``500``, ``408`` and any timeout.
* **Where the SDK differs:** it retries nothing unless ``RetryOptions`` (Functions:
  ``AzureSignalRRetry``) is set; it never retries a ``429`` (below 500) nor a refused or
  dropped connection (``HttpRequestException`` is not caught), only its own per-attempt
  timeout for non-send calls; its delays are fixed or exponential without jitter and
  ignore ``Retry-After``. We retry by default, on ``429`` (never accepted) and on
  connect errors (never sent), because neither can duplicate a message.
* ``429`` waits for ``Retry-After`` (seconds or an HTTP date) when the service sends it,
  capped by ``max_delay``; without it, the normal back-off applies.
* The back-off is exponential by default (``delay`` doubling up to ``max_delay``) or fixed
  (``delay`` every time), the two modes of the SDK's ``AzureSignalRRetry__Mode``
  (``Resilient/FixedBackoffPolicy.cs``, ``Resilient/ExponentialBackoffPolicy.cs``); both
  with jitter, which the SDK has not.
* Attempts (``max_attempts``, the first call included) and the total time (``max_total``,
  from the first attempt to the start of the last) are both bounded: a retry whose wait
  would cross ``max_total`` is not made, and the last error is raised instead.

The policy is data; :class:`app.services.signalr.SignalRService` runs the loop. Tests set
``delay=0`` through settings instead of patching sleeps.
"""

from __future__ import annotations

import enum
import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Literal

import httpx

if TYPE_CHECKING:
    from app.settings import Settings

__all__ = ["CallKind", "RetryPolicy", "parse_retry_after"]


class CallKind(enum.Enum):
    """Which retry rule a REST call follows."""

    SEND = "send"
    """A message send: retried only when it surely was not delivered."""
    OTHER = "other"
    """An idempotent call (groups, close, exists): also retried on 500, 408 and timeouts."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds and back-off for retrying one REST call.

    Attributes:
        max_attempts: attempts in all, the first included (1 disables retries).
        delay: the first back-off in seconds (every back-off in fixed mode).
        max_delay: the longest single wait, ``Retry-After`` included.
        max_total: seconds from the first attempt after which no retry starts.
        jitter: spread each wait over ``[wait / 2, wait]`` so many clients don't retry in step.
        mode: ``"exponential"`` (``delay`` doubles each retry) or ``"fixed"`` (``delay``
            every time); ``max_delay`` caps both.
    """

    max_attempts: int = 3
    delay: float = 0.8
    max_delay: float = 10.0
    max_total: float = 30.0
    jitter: bool = True
    mode: Literal["exponential", "fixed"] = "exponential"

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """Build the policy from ``SIGNALR_RETRY_*`` settings (or ``AzureSignalRRetry__*``)."""
        return cls(
            max_attempts=settings.retry_max_attempts,
            delay=settings.retry_delay,
            max_delay=settings.retry_max_delay,
            max_total=settings.retry_max_total,
            mode=settings.retry_mode,
        )

    def backoff(self, retry: int) -> float:
        """The wait before retry number ``retry`` (1 for the first retry)."""
        growth = 2.0 ** (retry - 1) if self.mode == "exponential" else 1.0
        wait = min(self.max_delay, self.delay * growth)
        if self.jitter and wait > 0:
            wait = random.uniform(wait / 2, wait)  # noqa: S311 - jitter, not crypto
        return wait

    @staticmethod
    def status_is_retryable(status: int, kind: CallKind) -> bool:
        """Whether an answer with ``status`` may be retried for a call of ``kind``."""
        if status == 429:
            return True
        if kind is CallKind.SEND:
            return status > 500
        return status >= 500 or status == 408

    @staticmethod
    def error_is_retryable(error: httpx.TransportError, kind: CallKind) -> bool:
        """Whether a transport error may be retried for a call of ``kind``.

        A read timeout on a send is the one transport error that is not retried: the
        request was written, so the service may have delivered it.
        """
        if kind is CallKind.SEND:
            return not isinstance(error, httpx.ReadTimeout)
        return True


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date).

    Returns:
        The wait (never negative), or ``None`` when the header is absent or unreadable.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)
