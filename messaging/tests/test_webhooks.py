"""Signed webhooks: the /webhooks API, the outbox written with a message's end, deliveries to
a real receiver on loopback (signature checked by a verifier written here from the Standard
Webhooks spec), retries, delivery by a server process started after the event, and the
address checks at creation and at delivery."""

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import ssl
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.db import DatabaseError
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import User
from accounts.services import api_key_create
from conversations.models import Conversation, Message
from conversations.services import conversation_create
from messaging.models import WebhookDelivery, WebhookEndpoint
from messaging.turns import turn_record_swept
from messaging.webhook_worker import (
    deliveries_claim,
    delivery_attempt,
    retry_delay,
    webhook_worker_ensure_running,
)
from messaging.webhooks import address_is_public, webhook_secret_new
from testsupport.asgi import ASGIRequest
from testsupport.factories import make_message
from testsupport.fake_groq import FakeGroq, Reply
from testsupport.helpers import MODEL, eventually, outbox_refusing_writes, settled
from testsupport.servers import LiveServer
from testsupport.turns import turn_finish, turn_start
from testsupport.webhook_receiver import Received, WebhookReceiver

ALL_EVENTS = ["message.completed", "message.failed", "message.cancelled"]


# --- an independent verifier, from the Standard Webhooks spec ------------------------------------


def verify(secret: str, received: Received, *, tolerance: int = 300) -> dict[str, Any]:
    """The body if ``received`` is signed with ``secret``: the key is the base64 after
    ``whsec_``; the signed content is ``{webhook-id}.{webhook-timestamp}.{body}``; the header
    holds space-separated ``v1,<base64 HMAC-SHA256>``; the timestamp within ``tolerance``."""
    msg_id = received.headers["webhook-id"]
    timestamp = received.headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance:
        raise AssertionError("timestamp out of tolerance")
    key = base64.b64decode(secret.split("_", 1)[1])
    content = msg_id.encode() + b"." + timestamp.encode() + b"." + received.body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest())
    for entry in received.headers["webhook-signature"].split(" "):
        version, _, signature = entry.partition(",")
        if version == "v1" and hmac.compare_digest(signature.encode(), expected):
            return dict(json.loads(received.body))
    raise AssertionError("no valid signature")


# --- the API -----------------------------------------------------------------------------------


@pytest.fixture
def allow_private(settings: Any) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True


@pytest.mark.django_db
@pytest.mark.usefixtures("allow_private")
def test_an_endpoint_is_created_with_its_secret_shown_once_listed_and_deleted(
    api_client: APIClient, webhook_receiver: WebhookReceiver
) -> None:
    # when
    created = api_client.post(
        "/api/v1/webhooks",
        {"url": webhook_receiver.url(), "events": ["message.failed", "message.completed"]},
        format="json",
    )
    endpoint_id = created.json()["id"]
    listed = api_client.get("/api/v1/webhooks")
    fetched = api_client.get(f"/api/v1/webhooks/{endpoint_id}")
    deleted = api_client.delete(f"/api/v1/webhooks/{endpoint_id}")
    after = api_client.get(f"/api/v1/webhooks/{endpoint_id}")

    # then
    assert created.status_code == 201
    body = created.json()
    assert body["url"] == webhook_receiver.url()
    assert body["events"] == ["message.completed", "message.failed"]
    assert body["secret"].startswith("whsec_")
    assert len(base64.b64decode(body["secret"].removeprefix("whsec_"))) >= 24
    assert listed.json()["data"] == [{k: v for k, v in body.items() if k != "secret"}]
    assert "secret" not in fetched.json()
    assert deleted.status_code == 204
    assert after.status_code == 404
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.django_db
@pytest.mark.usefixtures("allow_private")
@pytest.mark.parametrize("path", ["", "/deliveries"])
@pytest.mark.parametrize("which", ["another user's", "malformed", "missing"])
def test_an_endpoint_that_is_not_the_callers_is_the_same_404(
    path: str, which: str, other_user: User, api_client: APIClient
) -> None:
    # given
    theirs = WebhookEndpoint.objects.create(
        owner=other_user, url="https://example.com/h", events=ALL_EVENTS, secret="whsec_AAAA"
    )
    endpoint_id = {"another user's": theirs.pk, "malformed": "nope", "missing": uuid.uuid4()}

    # when
    got = api_client.get(f"/api/v1/webhooks/{endpoint_id[which]}{path}")
    deleted = api_client.delete(f"/api/v1/webhooks/{endpoint_id[which]}")

    # then
    assert got.status_code == deleted.status_code == 404
    assert got.json()["error"]["type"] == "not_found_error"
    assert WebhookEndpoint.objects.filter(pk=theirs.pk).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "https://93.184.215.14/h", "events": []}, "events"),
        ({"url": "https://93.184.215.14/h", "events": ["conversation.created"]}, "events"),
        ({"url": "https://93.184.215.14/h", "events": ALL_EVENTS, "secret": "x"}, "secret"),
        ({"url": "ftp://93.184.215.14/h", "events": ALL_EVENTS}, "url"),
        ({"url": "https://user:pw@93.184.215.14/h", "events": ALL_EVENTS}, "url"),
    ],
)
def test_a_bad_endpoint_is_a_400(api_client: APIClient, body: dict[str, Any], field: str) -> None:
    response = api_client.post("/api/v1/webhooks", body, format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["details"]["fields"]


@pytest.mark.django_db
def test_a_user_has_at_most_twenty_endpoints(user: User, api_client: APIClient) -> None:
    # given
    WebhookEndpoint.objects.bulk_create(
        WebhookEndpoint(owner=user, url="https://a.example/h", events=ALL_EVENTS, secret="s")
        for _ in range(20)
    )

    # when
    response = api_client.post(
        "/api/v1/webhooks", {"url": "https://93.184.215.14/h", "events": ALL_EVENTS}, format="json"
    )

    # then
    assert response.status_code == 400
    assert WebhookEndpoint.objects.count() == 20


@pytest.mark.django_db
def test_api_keys_need_the_conversation_scopes(user: User) -> None:
    # given
    _, read_only = api_key_create(user=user, name="r", scopes=["conversations:read"])
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=read_only)
    body = {"url": "https://93.184.215.14/h", "events": ALL_EVENTS}

    # when
    listed = client.get("/api/v1/webhooks")
    created = client.post("/api/v1/webhooks", body, format="json")

    # then
    assert listed.status_code == 200
    assert created.status_code == 403
    assert created.json()["error"]["details"]["required_scope"] == "conversations:write"


@pytest.mark.django_db
def test_the_admin_shows_endpoints_and_deliveries_without_secrets(
    admin_client: Client, user: User
) -> None:
    # given
    endpoint = WebhookEndpoint.objects.create(
        owner=user, url="https://a.example/h", events=ALL_EVENTS, secret="whsec_c2VjcmV0IQ=="
    )
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint,
        event_type="message.failed",
        payload={"type": "message.failed"},
        last_error="The receiver answered HTTP 500.",
    )

    # when
    pages = [
        admin_client.get("/admin/messaging/webhookendpoint/"),
        admin_client.get(f"/admin/messaging/webhookendpoint/{endpoint.pk}/change/"),
        admin_client.get("/admin/messaging/webhookdelivery/"),
        admin_client.get(f"/admin/messaging/webhookdelivery/{delivery.pk}/change/"),
    ]

    # then
    assert [page.status_code for page in pages] == [200, 200, 200, 200]
    assert all(b"whsec_" not in page.content for page in pages)
    assert b"The receiver answered HTTP 500." in pages[1].content


# --- the address checks ------------------------------------------------------------------------


def create(client: APIClient, url: str) -> Any:
    return client.post("/api/v1/webhooks", {"url": url, "events": ALL_EVENTS}, format="json")


REFUSED_URLS = [
    "http://93.184.215.14/hook",  # plain http
    "https://127.0.0.1/hook",
    "https://10.1.2.3/hook",
    "https://192.168.0.7/hook",
    "https://169.254.169.254/latest/meta-data",  # the cloud metadata address
    "https://[::1]/hook",
    "https://[fe80::1]/hook",
    "https://[fd00::1]/hook",
    "https://[::ffff:127.0.0.1]/hook",  # IPv4-mapped loopback
    "https://[::ffff:169.254.169.254]/hook",
    "https://0.0.0.0/hook",
    "https://localhost/hook",  # a name that resolves to loopback
]


@pytest.mark.django_db
@pytest.mark.parametrize("url", REFUSED_URLS)
def test_private_addresses_and_plain_http_are_refused(api_client: APIClient, url: str) -> None:
    response = api_client.post(
        "/api/v1/webhooks", {"url": url, "events": ALL_EVENTS}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["error"]["details"]["fields"]["url"]
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["https://93.184.215.14/hook", "https://[2606:4700::1111]/h"])
def test_a_public_address_is_accepted(api_client: APIClient, url: str) -> None:
    response = api_client.post(
        "/api/v1/webhooks", {"url": url, "events": ALL_EVENTS}, format="json"
    )

    assert response.status_code == 201


@pytest.mark.django_db
@pytest.mark.usefixtures("allow_private")
@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/hook", "https://localhost/hook", "http://[::1]/h"]
)
def test_the_development_setting_allows_private_addresses_and_http(
    api_client: APIClient, url: str
) -> None:
    response = api_client.post(
        "/api/v1/webhooks", {"url": url, "events": ALL_EVENTS}, format="json"
    )

    assert response.status_code == 201


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("100.64.0.1", False),  # shared address space (carrier-grade NAT)
        ("169.254.169.254", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:8.8.8.8", True),
        ("::", False),
    ],
)
def test_address_is_public(address: str, public: bool) -> None:
    assert address_is_public(ipaddress.ip_address(address)) is public


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
@pytest.mark.usefixtures("close_worker_connection")
async def test_a_name_that_resolves_to_a_private_address_at_delivery_time_is_refused(
    user: User, webhook_receiver: WebhookReceiver
) -> None:
    # given: an endpoint whose name passed the check when it was created (it resolved to a
    # public address then) and now resolves to loopback
    url = f"https://localhost:{webhook_receiver.port}/hook"
    endpoint = await WebhookEndpoint.objects.acreate(
        owner=user, url=url, events=ALL_EVENTS, secret=webhook_secret_new()
    )
    await WebhookDelivery.objects.acreate(
        endpoint=endpoint, event_type="message.completed", payload={"type": "message.completed"}
    )

    # when: the worker's claim and attempt
    (claimed,) = await sync_to_async(deliveries_claim)()
    async with httpx.AsyncClient() as client:
        status_code, error = await delivery_attempt(claimed, client)

    # then: no request was made
    assert status_code is None
    assert "not a public address" in error
    assert webhook_receiver.count() == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
@pytest.mark.usefixtures("close_worker_connection", "allow_private")
@pytest.mark.parametrize(
    ("certified", "delivered"), [("localhost", True), ("other.example", False)]
)
async def test_an_https_delivery_connects_to_the_checked_address_under_the_urls_name(
    certified: str, delivered: bool, user: User
) -> None:
    # given: an HTTPS receiver on 127.0.0.1 whose certificate names ``certified``
    receiver = WebhookReceiver(tls_name=certified).start()
    endpoint = await WebhookEndpoint.objects.acreate(
        owner=user, url=receiver.url("localhost"), events=ALL_EVENTS, secret=webhook_secret_new()
    )
    await WebhookDelivery.objects.acreate(
        endpoint=endpoint, event_type="message.completed", payload={"type": "message.completed"}
    )
    trusted = ssl.create_default_context(cadata=receiver.certificate_pem.decode())

    # when: the request goes to the address checked, the name kept for Host, SNI and the
    # certificate check
    (claimed,) = await sync_to_async(deliveries_claim)()
    try:
        async with httpx.AsyncClient(verify=trusted, trust_env=False) as client:
            status_code, error = await delivery_attempt(claimed, client)
    finally:
        receiver.stop()

    # then
    if delivered:
        assert (status_code, error) == (200, "")
        (received,) = receiver.received
        assert received.headers["host"] == f"localhost:{receiver.port}"
    else:
        assert status_code is None
        assert "certificate" in error.lower()
        assert receiver.count() == 0


def test_retry_delays_grow_exponentially_up_to_the_cap(settings: Any) -> None:
    settings.WEBHOOK_RETRY_BASE_SECONDS = 5
    settings.WEBHOOK_RETRY_MAX_DELAY_SECONDS = 3600

    delays = [retry_delay(attempt) for attempt in range(1, 9)]

    lower = [5, 20, 80, 320, 1280, 3600, 3600, 3600]
    assert all(low <= d <= low * 1.25 for d, low in zip(delays, lower, strict=True))


# --- the outbox --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_ended_answer_writes_one_delivery_per_subscribed_endpoint_of_its_owner(
    user: User, other_user: User, conversation: Conversation
) -> None:
    # given: two endpoints of the owner's (one not subscribed to completions) and another
    # user's
    mine = WebhookEndpoint.objects.create(
        owner=user, url="https://a.example/h", events=ALL_EVENTS, secret="whsec_AAAA"
    )
    WebhookEndpoint.objects.create(
        owner=user, url="https://b.example/h", events=["message.failed"], secret="whsec_AAAA"
    )
    WebhookEndpoint.objects.create(
        owner=other_user, url="https://c.example/h", events=ALL_EVENTS, secret="whsec_AAAA"
    )

    # when
    plan = turn_start(conversation)
    turn_finish(plan, input_tokens=10, output_tokens=5)

    # then
    (delivery,) = WebhookDelivery.objects.all()
    assert delivery.endpoint_id == mine.pk
    assert (delivery.event_type, delivery.status) == ("message.completed", "pending")
    data = delivery.payload["data"]["message"]
    assert delivery.payload["type"] == "message.completed"
    assert data["id"] == str(plan.assistant_message_id)
    assert data["conversation_id"] == str(conversation.pk)
    assert data["parent_id"] == str(plan.user_message.pk)
    assert data["status"] == "complete"
    assert data["usage"]["output_tokens"] == 5
    assert "content" not in data
    stored = Message.objects.get(pk=plan.assistant_message_id)
    assert data["created_at"] == stored.created_at.isoformat()


@pytest.mark.django_db
def test_a_user_without_endpoints_gets_no_delivery(conversation: Conversation) -> None:
    turn_finish(turn_start(conversation), input_tokens=10, output_tokens=5)

    assert not WebhookDelivery.objects.exists()


@pytest.mark.django_db
def test_the_outbox_row_and_the_messages_end_are_one_transaction(
    user: User, conversation: Conversation
) -> None:
    # given: an endpoint, and an outbox that refuses writes
    WebhookEndpoint.objects.create(
        owner=user, url="https://a.example/h", events=ALL_EVENTS, secret="whsec_AAAA"
    )
    plan = turn_start(conversation)

    # when
    with outbox_refusing_writes(), pytest.raises(DatabaseError, match="outbox down"):
        turn_finish(plan, input_tokens=10, output_tokens=5)

    # then: the message's end was rolled back with it
    assert Message.objects.get(pk=plan.assistant_message_id).status == "in_progress"


@pytest.mark.django_db
def test_a_swept_answer_is_told_as_failed(user: User, conversation: Conversation) -> None:
    # given
    WebhookEndpoint.objects.create(
        owner=user, url="https://a.example/h", events=ALL_EVENTS, secret="whsec_AAAA"
    )
    plan = turn_start(conversation)

    # when
    assert turn_record_swept(message_id=plan.assistant_message_id, content="part", reasoning="")

    # then
    (delivery,) = WebhookDelivery.objects.all()
    assert delivery.event_type == "message.failed"
    assert delivery.payload["data"]["message"]["status"] == "incomplete"


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
@pytest.mark.usefixtures("close_worker_connection")
async def test_cancelling_a_dead_process_answer_is_told_as_cancelled(
    user: User, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: an answer in progress on a process that is gone
    await WebhookEndpoint.objects.acreate(
        owner=user, url="https://a.example/h", events=ALL_EVENTS, secret="whsec_AAAA"
    )
    await sync_to_async(make_message)(
        conversation=conversation, role=Message.Role.USER, content="Hi"
    )
    answer = await sync_to_async(make_message)(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        content="",
        status=Message.Status.IN_PROGRESS,
        worker_id="a-dead-process",
    )

    # when
    cancel = await ASGIRequest(
        "POST", f"/api/v1/conversations/{conversation.pk}/messages/{answer.pk}/cancel", headers=auth
    ).start()
    body = await cancel.json()

    # then: the cancel and its event, together
    assert (cancel.status, body["status"]) == (200, "cancelled")
    delivery = await WebhookDelivery.objects.aget()
    assert delivery.event_type == "message.cancelled"
    assert delivery.payload["data"]["message"]["id"] == str(answer.pk)
    assert delivery.payload["data"]["message"]["status"] == "cancelled"


# --- deliveries --------------------------------------------------------------------------------


@pytest.fixture
def fast_retries(settings: Any) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    settings.WEBHOOK_RETRY_BASE_SECONDS = 0.3
    settings.WEBHOOK_POLL_SECONDS = 0.05


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
@pytest.mark.usefixtures("groq_providers", "close_worker_connection", "fast_retries")
async def test_a_background_answer_is_delivered_signed_after_two_failures(
    fake_groq: FakeGroq,
    webhook_receiver: WebhookReceiver,
    conversation: Conversation,
    auth: dict[str, str],
) -> None:
    # given: an endpoint on a name (localhost), whose receiver fails twice
    webhook_worker_ensure_running()
    webhook_receiver.statuses.extend([500, 503])
    created = await ASGIRequest(
        "POST",
        "/api/v1/webhooks",
        headers=auth,
        json_body={"url": webhook_receiver.url("localhost"), "events": ALL_EVENTS},
    ).start()
    endpoint = await created.json()
    fake_groq.replies.append(Reply(text=["Hello", " there", "!"]))

    # when
    sent = await ASGIRequest(
        "POST",
        f"/api/v1/conversations/{conversation.pk}/messages",
        headers=auth,
        json_body={"content": "Hi", "background": True},
    ).start()
    accepted = await sent.json()
    await settled(conversation)
    await asyncio.to_thread(eventually, lambda: webhook_receiver.count() >= 3, wait=15)

    # then: three attempts of one delivery, each signed, further and further apart
    first, second, third = webhook_receiver.received
    bodies = [verify(endpoint["secret"], attempt) for attempt in (first, second, third)]
    assert bodies[0] == bodies[1] == bodies[2]
    assert (
        first.headers["webhook-id"] == second.headers["webhook-id"] == third.headers["webhook-id"]
    )
    assert first.headers["host"] == f"localhost:{webhook_receiver.port}"
    assert second.at - first.at >= 0.3
    assert third.at - second.at >= 1.2
    body = bodies[0]
    assert body["type"] == "message.completed"
    assert body["data"]["message"]["id"] == accepted["assistant_message_id"]
    assert body["data"]["message"]["conversation_id"] == str(conversation.pk)
    assert body["data"]["message"]["status"] == "complete"

    log = await ASGIRequest(
        "GET", f"/api/v1/webhooks/{endpoint['id']}/deliveries", headers=auth
    ).start()
    deliveries = (await log.json())["data"]

    def delivered() -> bool:
        return WebhookDelivery.objects.get().status == "delivered"

    await sync_to_async(eventually)(delivered, wait=5)  # on the thread the fixture closes
    (logged,) = deliveries
    assert logged["webhook_id"] == first.headers["webhook-id"]
    assert logged["event_type"] == "message.completed"
    stored = await WebhookDelivery.objects.aget()
    assert (stored.attempts, stored.last_status_code, stored.last_error) == (3, 200, "")


@pytest.mark.django_db(transaction=True)
@pytest.mark.live_database
def test_a_delivery_written_while_no_server_runs_is_sent_by_the_next_server(
    user: User, webhook_receiver: WebhookReceiver, tmp_path: Path
) -> None:
    # given: an answer whose process died, finished (and its event written) while no server
    # process runs
    secret = webhook_secret_new()
    WebhookEndpoint.objects.create(
        owner=user, url=webhook_receiver.url(), events=ALL_EVENTS, secret=secret
    )
    conversation = conversation_create(owner=user, model=MODEL)
    make_message(conversation=conversation, role=Message.Role.USER, content="Hi")
    answer = make_message(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        content="",
        status=Message.Status.IN_PROGRESS,
        worker_id="a-dead-process",
    )
    assert turn_record_swept(message_id=answer.pk, content="par", reasoning="")
    assert WebhookDelivery.objects.get().status == "pending"

    # when: a server process starts
    server = LiveServer(
        env={"WEBHOOK_ALLOW_PRIVATE_URLS": "true", "LOG_LEVEL": "WARNING"},
        log_path=tmp_path / "server.log",
    )
    try:
        eventually(webhook_receiver.count, wait=15)
        eventually(lambda: WebhookDelivery.objects.get().status == "delivered", wait=5)
    finally:
        server.stop()

    # then
    (received,) = webhook_receiver.received
    body = verify(secret, received)
    assert body["type"] == "message.failed"
    assert body["data"]["message"]["id"] == str(answer.pk)
    assert body["data"]["message"]["status"] == "incomplete"


@pytest.mark.django_db(transaction=True)
@pytest.mark.live_database
def test_a_delivery_failing_when_its_server_is_killed_is_sent_by_another_server(
    user: User, webhook_receiver: WebhookReceiver, tmp_path: Path
) -> None:
    # given: a server whose deliveries fail (the receiver answers 500)
    webhook_receiver.statuses.extend([500] * 100)
    secret = webhook_secret_new()
    WebhookEndpoint.objects.create(
        owner=user, url=webhook_receiver.url(), events=ALL_EVENTS, secret=secret
    )
    env = {"WEBHOOK_ALLOW_PRIVATE_URLS": "true", "LOG_LEVEL": "WARNING"}
    first = LiveServer(
        env=env | {"WEBHOOK_RETRY_BASE_SECONDS": "3"}, log_path=tmp_path / "first.log"
    )
    try:
        conversation = conversation_create(owner=user, model=MODEL)
        make_message(conversation=conversation, role=Message.Role.USER, content="Hi")
        answer = make_message(
            conversation=conversation,
            role=Message.Role.ASSISTANT,
            content="",
            status=Message.Status.IN_PROGRESS,
            worker_id="a-dead-process",
        )
        assert turn_record_swept(message_id=answer.pk, content="par", reasoning="")
        eventually(lambda: WebhookDelivery.objects.get().last_status_code == 500, wait=15)
    finally:
        first.kill()  # SIGKILL, right after its first attempt failed
    webhook_receiver.statuses.clear()

    # when
    second = LiveServer(env=env, log_path=tmp_path / "second.log")
    try:
        eventually(lambda: WebhookDelivery.objects.get().status == "delivered", wait=20)
    finally:
        second.stop()

    # then: one delivery, the same webhook-id on both attempts, the last one accepted
    delivery = WebhookDelivery.objects.get()
    assert (delivery.attempts, delivery.last_status_code) == (2, 200)
    failed, delivered = webhook_receiver.received
    assert failed.headers["webhook-id"] == delivered.headers["webhook-id"] == delivery.webhook_id
    assert verify(secret, delivered)["data"]["message"]["id"] == str(answer.pk)


@pytest.fixture
def conversation(user: User) -> Conversation:
    return conversation_create(owner=user, model=MODEL)
