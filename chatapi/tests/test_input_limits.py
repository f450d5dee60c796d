"""Hostile and oversized input on every route that takes any: each is refused with the one
error envelope (never a 500) and changes nothing stored.

Elsewhere: the field-by-field validation tables (conversations, messages, usage, auth suites),
the 413 on a create (test_conventions), the message length cap (messaging test_send) and
other users' ids (conversations test_ownership). Here: the same limits across every route.
"""

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.http import HttpResponse
from rest_framework.test import APIClient

from accounts.models import User
from conversations.models import Conversation, Message
from messaging.models import IdempotencyKey
from testsupport.assertions import assert_error
from testsupport.factories import make_exchange
from usage.models import BudgetReservation, UsageRecord

pytestmark = pytest.mark.django_db

JSON = "application/json"
# Every route that reads a JSON body, by how the tests name it; {c} is the conversation's id.
BODY_ROUTES: dict[str, tuple[str, str]] = {
    "create conversation": ("POST", "/api/v1/conversations"),
    "change conversation": ("PATCH", "/api/v1/conversations/{c}"),
    "send": ("POST", "/api/v1/conversations/{c}/messages"),
    "send, streamed": ("POST", "/api/v1/conversations/{c}/messages/stream"),
    "register": ("POST", "/api/v1/auth/register"),
    "login": ("POST", "/api/v1/auth/login"),
    "refresh": ("POST", "/api/v1/auth/refresh"),
    "logout": ("POST", "/api/v1/auth/logout"),
}


@pytest.fixture
def exchange(user: User) -> Conversation:
    """The caller's conversation with a question and its answer."""
    return make_exchange(user)


def stored_state() -> list[Any]:
    """Every row a request could change, in full."""
    return [
        list(User.objects.order_by("pk").values()),
        list(Conversation.objects.order_by("pk").values()),
        list(Message.objects.order_by("pk").values()),
        list(UsageRecord.objects.order_by("pk").values()),
        list(BudgetReservation.objects.order_by("pk").values()),
        list(IdempotencyKey.objects.order_by("pk").values()),
    ]


@pytest.fixture
def unchanged(exchange: Conversation) -> Callable[[], None]:
    """Call at the end of a test: nothing stored differs from its start."""
    before = stored_state()

    def check() -> None:
        assert stored_state() == before

    return check


def raw(
    client: APIClient,
    route: str,
    conversation: Conversation,
    body: bytes | str,
    content_type: str = JSON,
    **headers: Any,
) -> Any:
    """The response to ``body`` sent as is (str or bytes) to one of BODY_ROUTES."""
    method, path = BODY_ROUTES[route]
    data: Any = body
    return client.generic(
        method, path.format(c=conversation.pk), data, content_type=content_type, **headers
    )


def assert_envelope(response: HttpResponse, status: int, error_type: str, message: str) -> None:
    error = assert_error(response, status, error_type)["error"]
    assert error == {"type": error_type, "message": message}


# --- body size and shape -----------------------------------------------------------------


@pytest.mark.parametrize("route", BODY_ROUTES)
def test_a_body_over_the_cap_is_413_on_every_route(
    settings, api_client: APIClient, exchange: Conversation, unchanged, route: str
) -> None:
    # given
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048

    # when: 2049 bytes of otherwise valid JSON
    body = '{"content": "' + "x" * (2049 - len('{"content": ""}')) + '"}'
    response = raw(api_client, route, exchange, body)

    # then
    assert len(body.encode()) == 2049
    assert_envelope(
        response, 413, "request_too_large", "The request body is larger than 2048 bytes."
    )
    unchanged()


@pytest.mark.parametrize("route", BODY_ROUTES)
def test_json_nested_deeper_than_the_decoder_goes_is_400_on_every_route(
    api_client: APIClient, exchange: Conversation, unchanged, route: str
) -> None:
    # given: an object whose one field holds 50,000 nested arrays (100 kB)
    body = '{"metadata": ' + "[" * 50_000 + "]" * 50_000 + "}"

    # when
    response = raw(api_client, route, exchange, body)

    # then
    assert_envelope(response, 400, "invalid_request_error", "JSON parse error - nested too deeply.")
    unchanged()


def test_metadata_nested_500_deep_within_the_size_cap_round_trips(api_client: APIClient) -> None:
    # given
    metadata: dict[str, Any] = {"leaf": True}
    for _ in range(499):
        metadata = {"a": metadata}

    # when
    response = api_client.post("/api/v1/conversations", {"metadata": metadata}, format="json")

    # then
    assert response.status_code == 201
    assert response.json()["metadata"] == metadata
    assert Conversation.objects.get().metadata == metadata


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("NaN", "JSON parse error - Out of range float values are not JSON compliant: 'NaN'"),
        (
            "-Infinity",
            "JSON parse error - Out of range float values are not JSON compliant: '-Infinity'",
        ),
        ("{not json", ("JSON parse error - Expecting property name enclosed in double quotes: "
                       "line 1 column 2 (char 1)")),
        ('{"content": "hi"', ("JSON parse error - Expecting ',' delimiter: "
                              "line 1 column 17 (char 16)")),
    ],
)  # fmt: skip
@pytest.mark.parametrize("route", BODY_ROUTES)
def test_malformed_json_is_400_on_every_route(
    api_client: APIClient,
    exchange: Conversation,
    unchanged,
    route: str,
    body: str,
    message: str,
) -> None:
    response = raw(api_client, route, exchange, body)

    assert_envelope(response, 400, "invalid_request_error", message)
    unchanged()


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("[]", "Invalid data. Expected a dictionary, but got list."),
        ('"text"', "Invalid data. Expected a dictionary, but got str."),
        ("42", "Invalid data. Expected a dictionary, but got int."),
        ("null", "No data provided"),
    ],
)
@pytest.mark.parametrize(
    "route", ["create conversation", "change conversation", "send", "send, streamed"]
)
def test_a_body_that_is_not_an_object_is_400(
    api_client: APIClient, exchange: Conversation, unchanged, route: str, body: str, problem: str
) -> None:
    response = raw(api_client, route, exchange, body)

    error = assert_error(response, 400, "invalid_request_error")["error"]
    assert error == {
        "type": "invalid_request_error",
        "message": problem,
        "details": {"fields": {"non_field_errors": [problem]}},
    }
    unchanged()


# --- text that PostgreSQL cannot store, and bytes that are not UTF-8 ---------------------

# (route, JSON body around the bad text in place of @, the field blamed)
TEXT_FIELDS = [
    ("create conversation", '{"title": "@"}', "title"),
    ("create conversation", '{"system_prompt": "@"}', "system_prompt"),
    ("create conversation", '{"model": "@"}', "model"),
    ("change conversation", '{"title": "@"}', "title"),
    ("change conversation", '{"system_prompt": "@"}', "system_prompt"),
    ("send", '{"content": "@"}', "content"),
    ("send", '{"content": "hi", "model": "@"}', "model"),
    ("send, streamed", '{"content": "@"}', "content"),
]
METADATA_FIELDS = [
    ("create conversation", '{"metadata": {"k": "@"}}'),
    ("create conversation", '{"metadata": {"@": 1}}'),
    ("create conversation", '{"metadata": {"k": [{"deep": ["@"]}]}}'),
    ("change conversation", '{"metadata": {"k": "@"}}'),
    ("change conversation", '{"metadata": {"@": "v"}}'),
]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a\\u0000b", "Null characters are not allowed."),
        ("\\ud800", "Surrogate characters are not allowed: U+D800."),
        ("x\\udfff", "Surrogate characters are not allowed: U+DFFF."),
        ("\\udc00\\ud800", "Surrogate characters are not allowed: U+DC00."),
    ],
)
@pytest.mark.parametrize(("route", "template", "field"), TEXT_FIELDS)
def test_nul_and_lone_surrogates_in_text_fields_are_400(
    api_client: APIClient,
    exchange: Conversation,
    unchanged,
    route: str,
    template: str,
    field: str,
    text: str,
    problem: str,
) -> None:
    response = raw(api_client, route, exchange, template.replace("@", text))

    error = assert_error(response, 400, "invalid_request_error")["error"]
    assert error == {
        "type": "invalid_request_error",
        "message": f"{field}: {problem}",
        "details": {"fields": {field: [problem]}},
    }
    unchanged()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a\\u0000b", "Null characters are not allowed."),
        ("\\ud800", "Surrogate characters are not allowed."),
        ("\\udfff tail", "Surrogate characters are not allowed."),
    ],
)
@pytest.mark.parametrize(("route", "template"), METADATA_FIELDS)
def test_nul_and_lone_surrogates_anywhere_in_metadata_are_400(
    api_client: APIClient,
    exchange: Conversation,
    unchanged,
    route: str,
    template: str,
    text: str,
    problem: str,
) -> None:
    response = raw(api_client, route, exchange, template.replace("@", text))

    error = assert_error(response, 400, "invalid_request_error")["error"]
    assert error["details"] == {"fields": {"metadata": [problem]}}
    unchanged()


@pytest.mark.parametrize(
    "bad",
    [
        b"\xff",  # never valid in UTF-8
        b"\xc3\x28",  # a lead byte without its continuation
        b"\xc0\xaf",  # an overlong encoding of "/"
        b"\xed\xa0\x80",  # a surrogate encoded directly (CESU-8)
        b"\xf4\x90\x80\x80",  # past U+10FFFF
        b"\xe2\x82",  # truncated
    ],
    ids=["ff", "lead-alone", "overlong", "cesu-surrogate", "past-max", "truncated"],
)
@pytest.mark.parametrize(
    ("route", "template"),
    [(route, template) for route, template, _ in TEXT_FIELDS] + METADATA_FIELDS,
)
def test_bytes_that_are_not_utf8_in_any_text_field_are_400(
    api_client: APIClient, exchange: Conversation, unchanged, route: str, template: str, bad: bytes
) -> None:
    # given
    body = template.encode().replace(b"@", b"ok" + bad)
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as error:
        expected = f"JSON parse error - {error}"

    # when
    response = raw(api_client, route, exchange, body)

    # then
    assert_envelope(response, 400, "invalid_request_error", expected)
    unchanged()


@pytest.mark.parametrize("route", ["register", "login", "refresh"])
def test_bytes_that_are_not_utf8_on_the_auth_routes_are_400(
    anon_client: APIClient, exchange: Conversation, unchanged, route: str
) -> None:
    body = b'{"email": "ada@example.com", "password": "\xff\xfe secret", "refresh_token": "\xff"}'

    response = raw(anon_client, route, exchange, body)

    assert_envelope(
        response,
        400,
        "invalid_request_error",
        "JSON parse error - 'utf-8' codec can't decode byte 0xff in position 42: "
        "invalid start byte",
    )
    unchanged()


def test_a_nul_in_the_search_query_is_400(api_client: APIClient, exchange: Conversation) -> None:
    response = api_client.get("/api/v1/conversations?q=a%00b")

    error = assert_error(response, 400, "invalid_request_error")["error"]
    assert error["details"] == {"fields": {"q": ["Null characters are not allowed."]}}


def test_bytes_that_are_not_utf8_in_a_query_string_are_read_as_replacement_characters(
    api_client: APIClient, exchange: Conversation
) -> None:
    # when: %ED%A0%80 is a UTF-8-encoded surrogate; %FF no UTF-8 at all
    response = api_client.get("/api/v1/conversations?q=%ED%A0%80%FF")

    # then: Django decodes the query with U+FFFD for each bad byte; nothing matches
    assert response.status_code == 200
    assert response.json() == {"data": [], "has_more": False, "first_id": None, "last_id": None}


def test_a_nul_or_overlong_idempotency_key_is_400_before_anything_is_stored(
    api_client: APIClient, exchange: Conversation, unchanged
) -> None:
    url = f"/api/v1/conversations/{exchange.pk}/messages"
    problem = "Idempotency-Key must be 1 to 255 printable characters."

    for key in ("a\x00b", "k" * 256, "tab\there"):
        response = api_client.post(url, {"content": "hi"}, format="json", HTTP_IDEMPOTENCY_KEY=key)

        error = assert_error(response, 400, "invalid_request_error")["error"]
        assert error == {
            "type": "invalid_request_error",
            "message": problem,
            "details": {"fields": {"Idempotency-Key": ["Invalid idempotency key."]}},
        }
    unchanged()


# --- huge values -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        ('{"temperature": 1e999}', "temperature", "A valid number is required."),
        ('{"temperature": -1e999}', "temperature", "A valid number is required."),
        ('{"temperature": 1e-999}', None, None),  # reads as 0.0: accepted
        ('{"max_output_tokens": 1' + "0" * 30 + "}", "max_output_tokens",
         "openai/gpt-oss-20b allows at most 65536 output tokens; "
         "max_output_tokens is 1" + "0" * 30 + "."),
        ('{"max_output_tokens": -1' + "0" * 30 + "}", "max_output_tokens",
         "Ensure this value is greater than or equal to 1."),
        ('{"title": "' + "t" * 100_000 + '"}', "title",
         "Ensure this field has no more than 200 characters."),
        ('{"system_prompt": "' + "s" * 500_000 + '"}', "system_prompt",
         "Ensure this field has no more than 32000 characters."),
        ('{"metadata": {"k": "' + "m" * 900_000 + '"}}', "metadata",
         "At most 16384 bytes of JSON are allowed (got 900008)."),
        ('{"metadata": {' + ",".join(f'"k{i}": {i}' for i in range(10_000)) + "}}", "metadata",
         "At most 64 keys are allowed."),
        ('{"model": "' + "m" * 10_000 + '"}', "model",
         "Ensure this field has no more than 100 characters."),
    ],
)  # fmt: skip
def test_huge_settings_and_metadata_are_400_and_store_nothing(
    api_client: APIClient,
    exchange: Conversation,
    unchanged,
    body: str,
    field: str | None,
    problem: str | None,
) -> None:
    # when: on a change, where a refusal must leave the conversation as it was
    response = raw(api_client, "change conversation", exchange, body)

    # then
    if field is None:
        assert response.status_code == 200
        assert response.json()["temperature"] == 0.0
        return
    error = assert_error(response, 400, "invalid_request_error")["error"]
    assert error["details"] == {"fields": {field: [problem]}}
    unchanged()


def test_an_integer_of_more_than_4300_digits_is_400(
    api_client: APIClient, exchange: Conversation, unchanged
) -> None:
    response = raw(
        api_client, "create conversation", exchange, '{"temperature": ' + "9" * 5000 + "}"
    )

    body = assert_error(response, 400, "invalid_request_error")
    assert body["error"]["message"].startswith(
        "JSON parse error - Exceeds the limit (4300 digits) for integer string conversion"
    )
    unchanged()


# --- ids in paths ------------------------------------------------------------------------

MALFORMED_IDS = [
    "not-a-uuid",
    "0",
    "a" * 5000,
    "%00",
    "%ED%A0%80",
    "%FF",
    "..%5C..%5Cetc%5Cpasswd",
    "5f0a2c1e-3b4d-4e6f-8a9b-0c1d2e3f4a5b%00",
    "'%20OR%201=1--",
]


@pytest.mark.parametrize("message_id", MALFORMED_IDS)
@pytest.mark.parametrize(
    ("method", "suffix"), [("GET", "stream"), ("POST", "cancel")], ids=["resume", "cancel"]
)
def test_a_malformed_message_id_is_404_like_a_missing_one(
    api_client: APIClient, exchange: Conversation, unchanged, method: str, suffix: str,
    message_id: str,
) -> None:  # fmt: skip
    url = f"/api/v1/conversations/{exchange.pk}/messages/{message_id}/{suffix}"

    response = api_client.generic(method, url)

    assert_envelope(response, 404, "not_found_error", "Message not found.")
    unchanged()


@pytest.mark.parametrize("conversation_id", MALFORMED_IDS)
@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("PATCH", ""), ("DELETE", ""), ("GET", "/messages"), ("POST", "/messages"),
     ("GET", "/export")],
)  # fmt: skip
def test_an_exotic_conversation_id_is_404_like_a_missing_one(
    api_client: APIClient, exchange: Conversation, unchanged, method: str, suffix: str,
    conversation_id: str,
) -> None:  # fmt: skip
    url = f"/api/v1/conversations/{conversation_id}{suffix}"

    response = api_client.generic(method, url, '{"content": "hi"}', content_type=JSON)

    assert_envelope(response, 404, "not_found_error", "Conversation not found.")
    unchanged()


# --- query parameters --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field", "problem"),
    [
        ("limit=-1", "limit", "Ensure this value is greater than or equal to 1."),
        ("limit=0", "limit", "Ensure this value is greater than or equal to 1."),
        ("limit=101", "limit", "Ensure this value is less than or equal to 100."),
        ("limit=1.5", "limit", "A valid integer is required."),
        ("limit=", "limit", "A valid integer is required."),
        ("limit=1e3", "limit", "A valid integer is required."),
        ("limit=%00", "limit", "A valid integer is required."),
        ("limit=" + "9" * 1001, "limit", "String value too large."),
        ("limit=1&limit=500", "limit", "Ensure this value is less than or equal to 100."),
        ("after_id=%00", "after_id", "Must be a valid UUID."),
        ("after_id=" + "a" * 5000, "after_id", "Must be a valid UUID."),
        ("before_id=1", "before_id", "Must be a valid UUID."),
        ("after_id=5f0a2c1e-3b4d-4e6f-8a9b-0c1d2e3f4a5b", "after_id",
         "No item with this id in this list."),
        ("before_id=5f0a2c1e-3b4d-4e6f-8a9b-0c1d2e3f4a5b", "before_id",
         "No item with this id in this list."),
        ("colour=red", "colour", "Unknown field."),
    ],
)  # fmt: skip
@pytest.mark.parametrize("listing", ["conversations", "messages"])
def test_bad_list_parameters_are_400_naming_the_parameter(
    api_client: APIClient, exchange: Conversation, listing: str, query: str, field: str,
    problem: str,
) -> None:  # fmt: skip
    path = "/api/v1/conversations" if listing == "conversations" else (
        f"/api/v1/conversations/{exchange.pk}/messages"
    )  # fmt: skip

    response = api_client.get(f"{path}?{query}")

    error = assert_error(response, 400, "invalid_request_error")["error"]
    assert error == {
        "type": "invalid_request_error",
        "message": f"{field}: {problem}",
        "details": {"fields": {field: [problem]}},
    }


@pytest.mark.parametrize(
    ("path", "query", "field", "problem"),
    [
        ("stats", "from=%00", "from",
         "Use an ISO 8601 date (2026-11-01) or date-time (2026-11-01T12:00:00Z)."),
        ("stats", "to=2026-11-01T25:00:00Z", "to",
         "Use an ISO 8601 date (2026-11-01) or date-time (2026-11-01T12:00:00Z)."),
        ("stats", "from=" + "2" * 5000, "from",
         "Use an ISO 8601 date (2026-11-01) or date-time (2026-11-01T12:00:00Z)."),
        ("stats", "tz=%00", "tz",
         "Unknown time zone '\x00': use an IANA name such as Europe/Lisbon or UTC."),
        ("stats", "tz=utc", "tz",
         "Unknown time zone 'utc': use an IANA name such as Europe/Lisbon or UTC."),
        ("daily", "tz=" + "Europe/" * 1000, "tz",
         f"Unknown time zone '{'Europe/' * 1000}': use an IANA name such as Europe/Lisbon or UTC."),
        ("stats", "model=openai/gpt-oss-20b", "model", "Unknown field."),
        ("stats", "conversation_id=5f0a2c1e-3b4d-4e6f-8a9b-0c1d2e3f4a5b", "conversation_id",
         "Unknown field."),
        ("daily", "from=-2026-11-01", "from",
         "Date has wrong format. Use one of these formats instead: YYYY-MM-DD."),
        ("daily", "to=2026-02-29", "to",
         "Date has wrong format. Use one of these formats instead: YYYY-MM-DD."),
        ("daily", "to=99999-01-01", "to",
         "Date has wrong format. Use one of these formats instead: YYYY-MM-DD."),
        ("daily", "from=2026-01-01&to=2026-01-01&limit=5", "limit", "Unknown field."),
    ],
)  # fmt: skip
def test_bad_usage_parameters_are_400_naming_the_parameter(
    api_client: APIClient, path: str, query: str, field: str, problem: str
) -> None:
    response = api_client.get(f"/api/v1/usage/{path}?{query}")

    error = assert_error(response, 400, "invalid_request_error")["error"]
    assert error == {
        "type": "invalid_request_error",
        "message": f"{field}: {problem}",
        "details": {"fields": {field: [problem]}},
    }


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        ("after=-1", {}),
        ("after=abc", {}),
        ("after=1.5", {}),
        ("after=%00", {}),
        ("", {"HTTP_LAST_EVENT_ID": "-5"}),
        ("", {"HTTP_LAST_EVENT_ID": "x"}),
    ],
)
def test_a_bad_resume_position_is_400(
    api_client: APIClient, exchange: Conversation, query: str, headers: dict[str, Any]
) -> None:
    answer = Message.objects.get(conversation=exchange, role="assistant")
    url = f"/api/v1/conversations/{exchange.pk}/messages/{answer.pk}/stream?{query}"

    response = api_client.get(url, **headers)

    error = assert_error(response, 400, "invalid_request_error")["error"]
    assert error["details"] == {"fields": {"after": ["Must be a non-negative integer."]}}


@pytest.mark.parametrize(
    ("query", "field", "problem"),
    [
        ("format=pdf", "format", '"pdf" is not a valid choice.'),
        ("format=", "format", '"" is not a valid choice.'),
        ("format=%00", "format", '"\x00" is not a valid choice.'),
        ("format=json&download=1", "download", "Unknown field."),
    ],
)
def test_bad_export_parameters_are_400(
    api_client: APIClient, exchange: Conversation, query: str, field: str, problem: str
) -> None:
    response = api_client.get(f"/api/v1/conversations/{exchange.pk}/export?{query}")

    error = assert_error(response, 400, "invalid_request_error")["error"]
    assert error["details"] == {"fields": {field: [problem]}}


# --- unknown fields and content types ----------------------------------------------------


@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        ("create conversation", {"title": "t", "owner_id": "x"}, "owner_id"),
        ("change conversation", {"id": "5f0a2c1e-3b4d-4e6f-8a9b-0c1d2e3f4a5b"}, "id"),
        ("change conversation", {"created_at": "2020-01-01T00:00:00Z"}, "created_at"),
        ("send", {"content": "hi", "role": "assistant"}, "role"),
        ("send", {"content": "hi", "system": "obey me"}, "system"),
        ("send, streamed", {"content": "hi", "messages": []}, "messages"),
        ("refresh", {"refresh_token": "r", "grant_type": "password"}, "grant_type"),
        ("logout", {"scope": "local", "all": True}, "all"),
        ("login", {"email": "ada@example.com", "password": "secret1", "role": "admin"}, "role"),
    ],
)
def test_unknown_body_fields_are_400_naming_them(
    api_client: APIClient, exchange: Conversation, unchanged, route: str, body: dict[str, Any],
    field: str,
) -> None:  # fmt: skip
    response = raw(api_client, route, exchange, json.dumps(body))

    error = assert_error(response, 400, "invalid_request_error")["error"]
    assert error == {
        "type": "invalid_request_error",
        "message": f"{field}: Unknown field.",
        "details": {"fields": {field: ["Unknown field."]}},
    }
    unchanged()


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/xml",
        "application/json-patch+json",
        "",
    ],
)
@pytest.mark.parametrize("route", BODY_ROUTES)
def test_a_body_that_is_not_json_is_415_on_every_route(
    api_client: APIClient, exchange: Conversation, unchanged, route: str, content_type: str
) -> None:
    response = raw(api_client, route, exchange, '{"content": "hi"}', content_type=content_type)

    assert_envelope(
        response,
        415,
        "invalid_request_error",
        f'Unsupported media type "{content_type}" in request.',
    )
    unchanged()


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "APPLICATION/JSON", "application/json"]
)
def test_json_with_a_charset_or_in_capitals_is_json(
    api_client: APIClient, content_type: str
) -> None:
    response = api_client.generic(
        "POST",
        "/api/v1/conversations",
        '{"title": "caf\u00e9"}',
        content_type=content_type,
    )

    assert response.status_code == 201
    assert response.json()["title"] == "caf\u00e9"
