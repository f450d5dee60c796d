"""The webhook delivery worker: an asyncio task in every server process (started from start-up,
like the heartbeat) that sends the outbox (``messaging.webhooks``).

It claims the due pending deliveries with ``SELECT ... FOR UPDATE SKIP LOCKED`` and, in the same
short transaction, counts the attempt and moves ``next_attempt_at`` past the attempt's timeout:
a lease, so no two processes send one delivery at once and no transaction stays open while a
request is in flight. A process that dies mid-attempt leaves the row to be claimed again when
its lease ends (delivery is at least once). A 2xx answer delivers it; anything else schedules
a retry with exponential backoff and jitter until ``WEBHOOK_RETRY_WINDOW_SECONDS`` after the
event, then marks it failed.

Before each attempt the URL's host is resolved and checked again (``webhook_target_resolve``),
and the request connects to the address that was checked, keeping the name for the Host header
and TLS (SNI and the certificate check): a name that resolves to a public address when checked
cannot send the request to a private one (DNS rebinding).

The worker wakes as soon as a write of this process commits, and polls every
``WEBHOOK_POLL_SECONDS`` for retries and other processes' rows.
"""

import asyncio
import contextlib
import logging
import random
import time
import uuid
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone

from messaging.models import WebhookDelivery, WebhookEndpoint
from messaging.webhooks import (
    AddressRefusedError,
    IpAddress,
    WebhookTarget,
    webhook_body,
    webhook_signature,
    webhook_target_resolve,
    webhook_wake_register,
)

logger = logging.getLogger(__name__)

_BATCH = 20
# A claim holds a delivery this long past the attempt's timeout before another may take it.
_LEASE_MARGIN_SECONDS = 30.0
_USER_AGENT = "chatapi-webhooks/1"

_services: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]]
_services = weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    id: uuid.UUID
    webhook_id: str
    url: str
    secret: str
    payload: dict[str, Any]
    attempt: int  # this attempt's number, from 1
    created_at: datetime


def retry_delay(attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (from 1): base * 4**(attempt-1),
    capped at WEBHOOK_RETRY_MAX_DELAY_SECONDS, plus up to 25 % jitter."""
    exponent = min(attempt - 1, 32)  # past this the cap applies anyway
    delay = min(
        settings.WEBHOOK_RETRY_BASE_SECONDS * 4**exponent, settings.WEBHOOK_RETRY_MAX_DELAY_SECONDS
    )
    return float(delay * random.uniform(1.0, 1.25))  # noqa: S311 (jitter, not a secret)


# --- the database side ------------------------------------------------------------------------


def deliveries_claim(*, limit: int = _BATCH) -> list[ClaimedDelivery]:
    """Take up to ``limit`` due pending deliveries that no other process holds, counting the
    attempt and leasing them for its duration.

    The claim's transaction touches the deliveries' table alone (the endpoints are read after
    it): a transaction that locked two tables one after the other could deadlock with a
    statement locking both in the other order (a TRUNCATE of a test's flush did)."""
    now = timezone.now()
    lease = now + timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS + _LEASE_MARGIN_SECONDS)
    with transaction.atomic():
        due = list(
            WebhookDelivery.objects.select_for_update(skip_locked=True)
            .filter(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now)
            .order_by("next_attempt_at")[:limit]
        )
        if not due:
            return []
        WebhookDelivery.objects.filter(pk__in=[d.pk for d in due]).update(
            attempts=F("attempts") + 1, next_attempt_at=lease
        )
    # An endpoint deleted meanwhile took its deliveries with it.
    endpoints = WebhookEndpoint.objects.in_bulk({d.endpoint_id for d in due})
    return [
        ClaimedDelivery(
            id=d.pk,
            webhook_id=d.webhook_id,
            url=endpoints[d.endpoint_id].url,
            secret=endpoints[d.endpoint_id].secret,
            payload=d.payload,
            attempt=d.attempts + 1,
            created_at=d.created_at,
        )
        for d in due
        if d.endpoint_id in endpoints
    ]


def delivery_record(
    delivery: ClaimedDelivery, *, status_code: int | None, error: str
) -> WebhookDelivery.Status:
    """Store an attempt's result: delivered on a 2xx, else the next attempt's time, or failed
    once that would be past the retry window. Returns the delivery's status now."""
    now = timezone.now()
    fields: dict[str, Any] = {"last_status_code": status_code, "last_error": error}
    if status_code is not None and 200 <= status_code < 300:
        fields |= {"status": WebhookDelivery.Status.DELIVERED, "delivered_at": now}
    else:
        retry_at = now + timedelta(seconds=retry_delay(delivery.attempt))
        window_end = delivery.created_at + timedelta(seconds=settings.WEBHOOK_RETRY_WINDOW_SECONDS)
        if retry_at > window_end:
            fields["status"] = WebhookDelivery.Status.FAILED
        else:
            fields["next_attempt_at"] = retry_at
    WebhookDelivery.objects.filter(pk=delivery.id, status=WebhookDelivery.Status.PENDING).update(
        **fields
    )
    return WebhookDelivery.Status(fields.get("status", WebhookDelivery.Status.PENDING))


@sync_to_async(thread_sensitive=False)
def _claim() -> list[ClaimedDelivery]:
    try:
        return deliveries_claim()
    finally:
        connection.close()


@sync_to_async(thread_sensitive=False)
def _record(delivery: ClaimedDelivery, *, status_code: int | None, error: str) -> None:
    try:
        delivery_record(delivery, status_code=status_code, error=error)
    finally:
        connection.close()


# --- the request ------------------------------------------------------------------------------


def _pinned(
    url: str, target: WebhookTarget, address: IpAddress
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The URL with its host replaced by ``address`` (one the check passed), the Host header
    naming the original host, and the TLS server name (SNI, and the name the certificate must
    carry)."""
    default_port = 443 if target.scheme == "https" else 80
    host = f"[{target.host}]" if ":" in target.host else target.host  # an IPv6 literal
    host_header = host if target.port == default_port else f"{host}:{target.port}"
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    pinned = httpx.URL(url).copy_with(host=str(address))
    return str(pinned), {"host": host_header}, extensions


async def delivery_attempt(
    delivery: ClaimedDelivery, client: httpx.AsyncClient
) -> tuple[int | None, str]:
    """Send one attempt: the status code the receiver answered (None: no answer) and the error
    to log ("" for a 2xx). The addresses checked are tried in turn until one connects."""
    try:
        target = await webhook_target_resolve(delivery.url)
    except AddressRefusedError as exc:
        return None, f"Refused: {exc}"
    body = webhook_body(delivery.payload)
    timestamp = int(time.time())
    signed = {
        "content-type": "application/json",
        "user-agent": _USER_AGENT,
        "webhook-id": delivery.webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": webhook_signature(
            secret=delivery.secret, webhook_id=delivery.webhook_id, timestamp=timestamp, body=body
        ),
    }
    error = ""
    try:
        async with asyncio.timeout(settings.WEBHOOK_TIMEOUT_SECONDS):
            for address in target.addresses:
                url, host, extensions = _pinned(delivery.url, target, address)
                try:
                    async with client.stream(
                        "POST", url, content=body, headers=signed | host, extensions=extensions
                    ) as response:
                        status_code = response.status_code
                except httpx.ConnectError as exc:
                    error = f"Could not connect to {address}: {exc}"
                    continue
                if 200 <= status_code < 300:
                    return status_code, ""
                return status_code, f"The receiver answered HTTP {status_code}."
    except TimeoutError:
        return None, f"No answer within {settings.WEBHOOK_TIMEOUT_SECONDS:g} s."
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return None, error


async def _deliver(delivery: ClaimedDelivery, client: httpx.AsyncClient) -> None:
    status_code, error = await delivery_attempt(delivery, client)
    if error:
        logger.info("webhook %s attempt %d: %s", delivery.webhook_id, delivery.attempt, error)
    await _record(delivery, status_code=status_code, error=error)


# --- the per-process task ---------------------------------------------------------------------


async def _deliver_forever(wake: asyncio.Event) -> None:
    async with httpx.AsyncClient(
        follow_redirects=False,
        timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
        trust_env=False,  # a proxy would connect to the name, not the checked address
    ) as client:
        while True:
            wake.clear()
            try:
                while batch := await _claim():
                    await asyncio.gather(*(_deliver(delivery, client) for delivery in batch))
            except (OperationalError, InterfaceError) as exc:
                logger.warning("webhook deliveries: database unreachable: %s", exc)
            except Exception:
                logger.exception("webhook deliveries failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(settings.WEBHOOK_POLL_SECONDS):
                    await wake.wait()


def webhook_worker_ensure_running() -> None:
    """Start this process's delivery worker, once per event loop (a start-up hook)."""
    loop = asyncio.get_running_loop()
    if loop in _services:
        return
    wake = asyncio.Event()
    webhook_wake_register(loop, wake)
    _services[loop] = loop.create_task(_deliver_forever(wake))
