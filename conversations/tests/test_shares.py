"""Share links: create, list, revoke; the snapshot they show as JSON and as a page; tokens;
expiry; what is never shown; the per-address rate limit."""

import re
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import User
from conversations.models import Conversation, Message, Share
from testsupport.assertions import assert_error
from testsupport.factories import at, make_conversation, make_exchange, make_message

pytestmark = pytest.mark.django_db

NOT_FOUND = {"type": "not_found_error", "message": "Share not found."}


def _shares_url(conversation: Conversation) -> str:
    return f"/api/v1/conversations/{conversation.id}/shares"


def _share(client: APIClient, conversation: Conversation, **body: Any) -> dict[str, Any]:
    response = client.post(_shares_url(conversation), body, format="json")
    assert response.status_code == 201, response.content
    created: dict[str, Any] = response.json()
    return created


@pytest.fixture
def conversation(user: User) -> Conversation:
    return make_exchange(user)


def test_sharing_answers_201_with_the_links(
    api_client: APIClient, conversation: Conversation
) -> None:
    # when
    response = api_client.post(_shares_url(conversation), {"expires_at": None}, format="json")

    # then
    assert response.status_code == 201
    body = response.json()
    share = Share.objects.get()
    assert body == {
        "id": str(share.id),
        "token": share.token,
        "url": f"http://testserver/s/{share.token}",
        "api_url": f"http://testserver/api/v1/shared/{share.token}",
        "message_count": 2,
        "created_at": body["created_at"],
        "expires_at": None,
    }


def test_a_token_carries_256_random_bits(api_client: APIClient, conversation: Conversation) -> None:
    tokens = {_share(api_client, conversation)["token"] for _ in range(20)}

    # 32 bytes in URL-safe base64, without padding: 43 characters, all different
    assert len(tokens) == 20
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", token) for token in tokens)


def test_the_shared_json_is_the_snapshot_without_ids_or_owner(
    api_client: APIClient, anon_client: APIClient, conversation: Conversation
) -> None:
    # given
    token = _share(api_client, conversation)["token"]

    # when
    response = anon_client.get(f"/api/v1/shared/{token}")

    # then
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "title": "Trip to Lisbon",
        "shared_at": body["shared_at"],
        "expires_at": None,
        "messages": [
            {
                "role": "user",
                "content": "Three things to see?",
                "status": "complete",
                "model": None,
                "created_at": "2026-11-01T09:00:01Z",
            },
            {
                "role": "assistant",
                "content": "Belem Tower, the Alfama, LX Factory.",
                "status": "complete",
                "model": "openai/gpt-oss-20b",
                "created_at": "2026-11-01T09:00:02Z",
            },
        ],
    }
    owner = conversation.owner
    for secret in (owner.email, str(owner.id), str(conversation.id)):
        assert secret not in response.content.decode()


def test_messages_added_after_sharing_are_never_shown(
    api_client: APIClient, anon_client: APIClient, conversation: Conversation
) -> None:
    # given
    token = _share(api_client, conversation)["token"]

    # when
    make_message(conversation=conversation, role=Message.Role.USER, content="And a fourth?")
    response = anon_client.get(f"/api/v1/shared/{token}")
    page = anon_client.get(f"/s/{token}")

    # then
    assert [m["content"] for m in response.json()["messages"]] == [
        "Three things to see?",
        "Belem Tower, the Alfama, LX Factory.",
    ]
    assert "And a fourth?" not in page.content.decode()


def test_an_answer_still_being_generated_is_left_out(
    api_client: APIClient, anon_client: APIClient, conversation: Conversation
) -> None:
    # given
    make_message(
        conversation=conversation, role=Message.Role.USER, content="More?", created_at=at(3)
    )
    make_message(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        content="Sintra, and",
        status=Message.Status.IN_PROGRESS,
        created_at=at(4),
    )

    # when
    created = _share(api_client, conversation)
    body = anon_client.get(f"/api/v1/shared/{created['token']}").json()

    # then
    assert created["message_count"] == 3
    assert [m["content"] for m in body["messages"]][-1] == "More?"


def test_the_owner_lists_shares_newest_first(
    api_client: APIClient, conversation: Conversation
) -> None:
    # given
    first = _share(api_client, conversation)
    second = _share(api_client, conversation)

    # when
    response = api_client.get(_shares_url(conversation))

    # then
    assert response.status_code == 200
    assert response.json() == {
        "data": [second, first],
        "has_more": False,
        "first_id": second["id"],
        "last_id": first["id"],
    }


TOKEN_STATES = ["revoked", "expired", "unknown", "malformed"]


@pytest.fixture
def token_in_state(
    request: pytest.FixtureRequest, api_client: APIClient, conversation: Conversation
) -> str:
    state = request.param
    if state == "unknown":
        return "q3Vx0kqQy1y6XbqfJ5mN0o2Lr8s7T4uW9zA1bC2dE3f"
    if state == "malformed":
        return "x" * 300
    created = _share(api_client, conversation)
    if state == "revoked":
        response = api_client.delete(f"{_shares_url(conversation)}/{created['id']}")
        assert response.status_code == 204
    else:
        Share.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    token: str = created["token"]
    return token


@pytest.mark.parametrize("token_in_state", TOKEN_STATES, indirect=True)
def test_a_revoked_expired_or_unknown_token_is_the_same_404(
    anon_client: APIClient, token_in_state: str
) -> None:
    # when
    response = anon_client.get(f"/api/v1/shared/{token_in_state}")
    page = Client().get(f"/s/{token_in_state}")

    # then
    body = assert_error(response, 404, "not_found_error")
    assert body["error"] == NOT_FOUND
    assert page.status_code == 404
    assert page["Content-Type"] == "text/html; charset=utf-8"
    assert "This link does not exist, was revoked by its owner, or has expired." in (
        page.content.decode()
    )


def test_a_link_works_until_it_expires(
    api_client: APIClient, anon_client: APIClient, conversation: Conversation
) -> None:
    # given
    expires_at = timezone.now() + timedelta(hours=1)
    created = _share(api_client, conversation, expires_at=expires_at.isoformat())

    # when
    before = anon_client.get(f"/api/v1/shared/{created['token']}")
    Share.objects.update(expires_at=timezone.now() - timedelta(microseconds=1))
    after = anon_client.get(f"/api/v1/shared/{created['token']}")

    # then
    assert before.status_code == 200
    assert before.json()["expires_at"] == created["expires_at"]
    assert_error(after, 404, "not_found_error")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"expires_at": "2020-01-01T00:00:00Z"}, "expires_at: Must be in the future."),
        ({"expires_at": "soon"}, None),
        ({"expires_at": 3600}, None),
        ({"title": "x"}, None),
    ],
)
def test_bad_share_bodies_are_a_400(
    api_client: APIClient, conversation: Conversation, body: dict[str, Any], message: str | None
) -> None:
    response = api_client.post(_shares_url(conversation), body, format="json")

    error = assert_error(response, 400, "invalid_request_error")
    if message is not None:
        assert error["error"]["message"] == message
    assert not Share.objects.exists()


def test_deleting_the_conversation_revokes_its_links(
    api_client: APIClient, anon_client: APIClient, conversation: Conversation
) -> None:
    # given
    token = _share(api_client, conversation)["token"]

    # when
    api_client.delete(f"/api/v1/conversations/{conversation.id}")

    # then
    assert_error(anon_client.get(f"/api/v1/shared/{token}"), 404, "not_found_error")


def test_another_users_share_id_is_a_404_and_is_not_revoked(
    api_client: APIClient, other_client: APIClient, other_user: User, conversation: Conversation
) -> None:
    # given: the other user's own conversation, and this user's share
    theirs = make_conversation(owner=other_user)
    share_id = _share(api_client, conversation)["id"]

    # when
    response = other_client.delete(f"{_shares_url(theirs)}/{share_id}")

    # then
    body = assert_error(response, 404, "not_found_error")
    assert body["error"] == NOT_FOUND
    assert Share.objects.filter(id=share_id).exists()


@pytest.mark.parametrize("share_id", ["not-a-uuid", "5f0a2c1e-3b4d-4e6f-8a9b-0c1d2e3f4a5b"])
def test_revoking_a_missing_or_malformed_share_id_is_a_404(
    api_client: APIClient, conversation: Conversation, share_id: str
) -> None:
    response = api_client.delete(f"{_shares_url(conversation)}/{share_id}")

    assert assert_error(response, 404, "not_found_error")["error"] == NOT_FOUND


def test_the_page_renders_markdown_answers_and_escapes_html(
    api_client: APIClient, user: User
) -> None:
    # given
    conversation = make_conversation(owner=user, title="<b>Tags</b> & more")
    make_message(
        conversation=conversation, role=Message.Role.USER, content="<script>alert(1)</script>"
    )
    make_message(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        content="**Bold** and `code`\n\n<img src=x onerror=alert(2)>\n\n"
        "[click](javascript:alert(3)) ![pixel](https://tracker.example/p.png)",
    )
    token = _share(api_client, conversation)["token"]

    # when
    response = Client().get(f"/s/{token}")

    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert "<title>&lt;b&gt;Tags&lt;/b&gt; &amp; more</title>" in html
    assert '<div class="text">&lt;script&gt;alert(1)&lt;/script&gt;</div>' in html
    assert "<p><strong>Bold</strong> and <code>code</code></p>" in html
    assert "<p>&lt;img src=x onerror=alert(2)&gt;</p>" in html
    assert "[click](javascript:alert(3))" in html  # not a link
    # not an image the page would fetch: a link to it
    assert '!<a href="https://tracker.example/p.png">pixel</a>' in html
    assert "<script" not in html
    assert "<img" not in html
    assert "Content-Security-Policy" in response.headers
    assert "script-src 'self'" in response["Content-Security-Policy"]


def test_shared_reads_are_rate_limited_per_address_json_and_page_together(
    api_client: APIClient, conversation: Conversation, settings: Any
) -> None:
    # given
    settings.RATE_LIMIT_SHARED_PER_MINUTE = 2
    token = _share(api_client, conversation)["token"]
    here, elsewhere = APIClient(REMOTE_ADDR="203.0.113.7"), APIClient(REMOTE_ADDR="203.0.113.8")

    # when
    first = here.get(f"/api/v1/shared/{token}")
    second = here.get(f"/s/{token}")
    third_json = here.get(f"/api/v1/shared/{token}")
    third_page = here.get(f"/s/{token}")
    other_address = elsewhere.get(f"/s/{token}")

    # then
    assert [first.status_code, second.status_code] == [200, 200]
    assert first["X-RateLimit-Remaining"] == "1"
    body = assert_error(third_json, 429, "rate_limit_error")
    assert body["error"]["message"].startswith(
        "Too many shared conversations read from this address: at most 2 per minute."
    )
    assert third_page.status_code == 429
    assert int(third_page["Retry-After"]) >= 1
    assert other_address.status_code == 200
