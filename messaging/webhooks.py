"""Signed webhooks: a user's endpoints, the outbox rows written when a message ends, the
Standard Webhooks signature, and the address checks that keep deliveries off private networks.
The worker that sends the outbox is ``messaging.webhook_worker``.

Every way a message ends (``turns.turn_record``, ``turns.turn_record_swept``, the orphan
cancel of ``services``) calls ``webhook_outbox_write`` inside the transaction that stores the
end: the event is written if and only if the end is, and a delivery survives any restart.
"""

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import secrets
import socket
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import User
from accounts.rls import service_role
from chatapi.errors import ApiError, NotFoundError
from chatapi.pagination import Page, PageParams, keyset_page
from conversations.events import WEBHOOK_EVENTS, message_ended_event, message_event_data
from conversations.models import Message
from messaging.models import WebhookDelivery, WebhookEndpoint

# Each endpoint is one more request per event: a user's fan-out is bounded.
MAX_ENDPOINTS_PER_USER = 20
SECRET_PREFIX = "whsec_"  # noqa: S105 (the format's prefix, not a secret)
_SECRET_BYTES = 32

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


# --- the signature (Standard Webhooks) -----------------------------------------------------------


def webhook_secret_new() -> str:
    """A signing secret as Standard Webhooks shows it: ``whsec_`` + base64 of the key."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode()


def webhook_signature(*, secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: ``v1,`` + base64 of the HMAC-SHA256 of
    ``{id}.{timestamp}.{body}`` keyed with the secret's decoded bytes."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def webhook_body(payload: dict[str, Any]) -> bytes:
    """The bytes a delivery sends (and signs)."""
    return orjson.dumps(payload)


# --- the addresses ------------------------------------------------------------------------------


class AddressRefusedError(Exception):
    """A webhook URL that must not be called; the message says why."""


def address_is_public(address: IpAddress) -> bool:
    """Whether ``address`` is on the public internet: not private, loopback, link-local (the
    cloud metadata address 169.254.169.254 among them), multicast, reserved or unspecified,
    an IPv4-mapped IPv6 address judged as the IPv4 address it carries."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """Where a delivery goes: the URL's parts, and the addresses its host resolved to."""

    scheme: str
    host: str
    port: int
    addresses: tuple[IpAddress, ...]


def _url_parts(url: str) -> tuple[str, str, int]:
    """The scheme, host and port of a webhook URL, or AddressRefusedError."""
    parts = urlsplit(url)
    allowed = ("https", "http") if settings.WEBHOOK_ALLOW_PRIVATE_URLS else ("https",)
    if parts.scheme not in allowed:
        raise AddressRefusedError("The URL must use https.")
    if not parts.hostname:
        raise AddressRefusedError("The URL has no host.")
    if parts.username is not None or parts.password is not None:
        raise AddressRefusedError("The URL must not carry credentials.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise AddressRefusedError("The URL's port is not valid.") from None
    return parts.scheme, parts.hostname, port


def _checked(host: str, addresses: Iterable[str]) -> tuple[IpAddress, ...]:
    # Link-local IPv6 addresses come back with a zone (fe80::1%eth0): the zone is dropped.
    found = tuple(dict.fromkeys(ipaddress.ip_address(a.split("%")[0]) for a in addresses))
    if not found:
        raise AddressRefusedError(f"The host {host} does not resolve.")
    if not settings.WEBHOOK_ALLOW_PRIVATE_URLS:
        for address in found:
            if not address_is_public(address):
                raise AddressRefusedError(
                    f"The host {host} resolves to {address}, which is not a public address."
                )
    return found


def _literal(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def webhook_target_check(url: str) -> WebhookTarget:
    """Resolve ``url``'s host (blocking: for a request's thread) and check every address."""
    scheme, host, port = _url_parts(url)
    literal = _literal(host)
    if literal is not None:
        return WebhookTarget(scheme, host, port, _checked(host, [str(literal)]))
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise AddressRefusedError(f"The host {host} does not resolve.") from None
    return WebhookTarget(scheme, host, port, _checked(host, [str(info[4][0]) for info in infos]))


async def webhook_target_resolve(url: str) -> WebhookTarget:
    """``webhook_target_check`` on the event loop (the resolver runs in its thread pool): at
    delivery time, so a name that now resolves to a private address is refused."""
    scheme, host, port = _url_parts(url)
    literal = _literal(host)
    if literal is not None:
        return WebhookTarget(scheme, host, port, _checked(host, [str(literal)]))
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise AddressRefusedError(f"The host {host} does not resolve.") from None
    return WebhookTarget(scheme, host, port, _checked(host, [str(info[4][0]) for info in infos]))


# --- endpoints ------------------------------------------------------------------------------------


def webhook_endpoint_create(*, owner: User, url: str, events: list[str]) -> WebhookEndpoint:
    """A new endpoint of ``owner``'s, after checking its URL's addresses (ApiError if they are
    refused, or when ``owner`` has MAX_ENDPOINTS_PER_USER already). Its secret is on the
    returned row: the only time the API shows it."""
    if WebhookEndpoint.objects.filter(owner=owner).count() >= MAX_ENDPOINTS_PER_USER:
        raise ApiError(
            f"At most {MAX_ENDPOINTS_PER_USER} webhook endpoints per user: delete one first."
        )
    try:
        webhook_target_check(url)
    except AddressRefusedError as exc:
        raise ApiError(str(exc), details={"fields": {"url": [str(exc)]}}) from None
    return WebhookEndpoint.objects.create(
        owner=owner,
        url=url,
        events=[str(event) for event in WEBHOOK_EVENTS if event in events],
        secret=webhook_secret_new(),
    )


def webhook_endpoint_list(*, owner: User, page: PageParams) -> Page[WebhookEndpoint]:
    return keyset_page(
        WebhookEndpoint.objects.filter(owner=owner),
        params=page,
        sort_field="created_at",
        descending=True,
    )


def webhook_endpoint_get_for_user(*, user: User, endpoint_id: str) -> WebhookEndpoint:
    """The endpoint if ``user`` owns it; NotFoundError (the same body) for any other id."""
    try:
        pk = uuid.UUID(endpoint_id)
    except ValueError:
        raise NotFoundError("Webhook endpoint not found.") from None
    endpoint = WebhookEndpoint.objects.filter(owner=user, pk=pk).first()
    if endpoint is None:
        raise NotFoundError("Webhook endpoint not found.")
    return endpoint


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Delete the endpoint with its delivery log; its pending deliveries are not sent."""
    endpoint.delete()


def webhook_delivery_list(*, endpoint: WebhookEndpoint, page: PageParams) -> Page[WebhookDelivery]:
    return keyset_page(
        WebhookDelivery.objects.filter(endpoint=endpoint),
        params=page,
        sort_field="created_at",
        descending=True,
    )


# --- the outbox ---------------------------------------------------------------------------------

# The outbox rows of one event: one per endpoint of the owner subscribed to it.
OUTBOX_INSERT = f"""
INSERT INTO {WebhookDelivery._meta.db_table}
    (id, endpoint_id, event_type, payload, status, attempts, next_attempt_at, last_error,
     created_at)
SELECT gen_random_uuid(), e.id, %(outbox_event)s::text, %(outbox_payload)s::jsonb,
    %(outbox_status)s::text, 0, %(outbox_now)s::timestamptz, '', %(outbox_now)s::timestamptz
FROM {WebhookEndpoint._meta.db_table} e
WHERE e.owner_id = %(outbox_owner)s::uuid AND %(outbox_event)s::text = ANY(e.events)"""  # noqa: S608 (our own table names; the values are parameters)

# The event loops whose delivery worker waits for new rows, woken when a write commits.
_wakers: dict[asyncio.AbstractEventLoop, asyncio.Event] = {}


def webhook_wake_register(loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
    _wakers[loop] = event


def _wake() -> None:
    for loop, event in list(_wakers.items()):
        if loop.is_closed():
            _wakers.pop(loop, None)
        else:
            loop.call_soon_threadsafe(event.set)


def webhook_outbox_params(*, owner_id: uuid.UUID | None, message: Message) -> dict[str, Any]:
    """The parameters of ``OUTBOX_INSERT`` for the event telling how ``message`` ended; empty
    when it tells nothing (still in progress) or has no owner to tell."""
    event = message_ended_event(message.status)
    if event is None or owner_id is None:
        return {}
    now = timezone.now()
    payload = {
        "type": str(event),
        "timestamp": now.isoformat(),
        "data": {"message": message_event_data(message)},
    }
    return {
        "outbox_event": str(event),
        "outbox_payload": orjson.dumps(payload).decode(),
        "outbox_status": WebhookDelivery.Status.PENDING,
        "outbox_now": now,
        "outbox_owner": owner_id,
    }


def webhook_outbox_written() -> None:
    """Rows were written to the outbox: this process's delivery worker wakes when they
    commit (at once outside a transaction)."""
    transaction.on_commit(_wake)


def webhook_outbox_write(*, owner_id: uuid.UUID | None, message: Message) -> None:
    """Write the event telling how ``message`` ended for each of ``owner_id``'s endpoints
    subscribed to it: one statement, no row when there is none. Call it inside the
    transaction that stores the end; this process's delivery worker wakes when it commits."""
    params = webhook_outbox_params(owner_id=owner_id, message=message)
    if not params:
        return
    with service_role(), connection.cursor() as cursor:  # the outbox is the service's
        cursor.execute(OUTBOX_INSERT, params)
        written = cursor.rowcount
    if written:
        webhook_outbox_written()
