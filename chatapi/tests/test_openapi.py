"""The OpenAPI document builds without a single warning, validates, and documents the API."""

import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.drainage import reset_generator_stats


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("openapi") / "openapi.json"
    # Warnings are remembered per process; start clean so this build's are the ones judged.
    reset_generator_stats()
    call_command(
        "spectacular", "--fail-on-warn", "--validate", "--format", "openapi-json", "--file", out
    )
    loaded: dict[str, Any] = json.loads(Path(out).read_text())
    return loaded


def _operation_ids(schema: dict[str, Any], path: str) -> dict[str, str]:
    return {
        method: operation["operationId"]
        for method, operation in schema["paths"][path].items()
        if method != "parameters"
    }


def test_schema_builds_without_warnings_and_validates(schema: dict[str, Any]) -> None:
    assert schema["info"]["title"] == "chatapi"


def test_conversation_routes_are_documented(schema: dict[str, Any]) -> None:
    assert _operation_ids(schema, "/api/v1/conversations") == {
        "get": "conversations_list",
        "post": "conversations_create",
    }
    assert _operation_ids(schema, "/api/v1/conversations/{conversation_id}") == {
        "get": "conversations_retrieve",
        "patch": "conversations_update",
        "delete": "conversations_delete",
    }
    assert _operation_ids(schema, "/api/v1/conversations/{conversation_id}/messages") == {
        "get": "conversations_messages_list",
        "post": "conversations_messages_create",
    }
    assert _operation_ids(schema, "/api/v1/conversations/{conversation_id}/messages/stream") == {
        "post": "conversations_messages_stream",
    }


def test_responses_and_path_parameter(schema: dict[str, Any]) -> None:
    detail = schema["paths"]["/api/v1/conversations/{conversation_id}"]
    assert sorted(detail["delete"]["responses"]) == ["204", "401", "404"]
    assert sorted(schema["paths"]["/api/v1/conversations"]["post"]["responses"]) == [
        "201",
        "400",
        "401",
        "413",
        "415",
    ]
    (parameter,) = detail["get"]["parameters"]
    assert parameter["name"] == "conversation_id"
    assert parameter["in"] == "path"
    assert parameter["schema"] == {"type": "string", "format": "uuid"}


def test_list_parameters_and_envelope(schema: dict[str, Any]) -> None:
    operation = schema["paths"]["/api/v1/conversations"]["get"]
    parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}
    assert sorted(parameters) == ["after_id", "archived", "before_id", "limit", "q"]
    assert parameters["limit"]["schema"] == {
        "type": "integer",
        "maximum": 100,
        "minimum": 1,
        "default": 20,
    }
    assert parameters["after_id"]["schema"] == {"type": "string", "format": "uuid"}
    envelope = schema["components"]["schemas"]["ConversationList"]
    assert sorted(envelope["properties"]) == ["data", "first_id", "has_more", "last_id"]
    assert envelope["properties"]["data"]["items"] == {"$ref": "#/components/schemas/Conversation"}
    messages = schema["components"]["schemas"]["MessageList"]
    assert messages["properties"]["data"]["items"] == {"$ref": "#/components/schemas/Message"}


def test_examples_are_attached(schema: dict[str, Any]) -> None:
    create = schema["paths"]["/api/v1/conversations"]["post"]
    assert sorted(create["requestBody"]["content"]["application/json"]["examples"]) == [
        "Full",
        "Minimal",
    ]
    created = create["responses"]["201"]["content"]["application/json"]["examples"]
    assert created["Created"]["value"]["model"] == "openai/gpt-oss-20b"
    listing = schema["paths"]["/api/v1/conversations"]["get"]["responses"]["200"]
    assert listing["content"]["application/json"]["examples"]["Page"]["value"]["has_more"] is True
    messages = schema["paths"]["/api/v1/conversations/{conversation_id}/messages"]["get"]
    page = messages["responses"]["200"]["content"]["application/json"]["examples"]["Page"]
    assert [item["role"] for item in page["value"]["data"]] == ["user", "assistant"]


def test_usage_routes_are_documented(schema: dict[str, Any]) -> None:
    assert _operation_ids(schema, "/api/v1/models") == {"get": "models_list"}
    assert _operation_ids(schema, "/api/v1/usage/models") == {"get": "usage_models_list"}
    assert schema["paths"]["/api/v1/usage/models"]["get"]["deprecated"] is True
    stats = schema["paths"]["/api/v1/usage/stats"]["get"]
    assert [parameter["name"] for parameter in stats["parameters"]] == [
        "api_key_id",
        "from",
        "to",
        "tz",
    ]
    assert sorted(stats["responses"]) == ["200", "400", "401", "404"]
    example = stats["responses"]["200"]["content"]["application/json"]["examples"]["Stats"]
    assert example["value"]["cost_usd"] == example["value"]["cost_estimate_usd"]
    daily = schema["paths"]["/api/v1/usage/daily"]["get"]
    assert [parameter["name"] for parameter in daily["parameters"]] == [
        "api_key_id",
        "from",
        "to",
        "tz",
    ]
    properties = schema["components"]["schemas"]["UsageDaily"]["properties"]
    assert sorted(properties) == ["data", "from", "to", "tz"]
    login = schema["paths"]["/api/v1/auth/login"]["post"]
    assert sorted(login["responses"]) == [
        "200",
        "400",
        "401",
        "403",
        "413",
        "415",
        "429",
        "502",
        "503",
    ]


def test_api_key_routes_are_documented(schema: dict[str, Any]) -> None:
    assert _operation_ids(schema, "/api/v1/api-keys") == {
        "get": "api_keys_list",
        "post": "api_keys_create",
    }
    assert _operation_ids(schema, "/api/v1/api-keys/{api_key_id}") == {"delete": "api_keys_revoke"}
    created = schema["paths"]["/api/v1/api-keys"]["post"]["responses"]["201"]
    created_schema = created["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert "key" in schema["components"]["schemas"][created_schema]["properties"]
    listed = schema["components"]["schemas"]["ApiKey"]["properties"]
    assert "key" not in listed
    assert "key_hash" not in listed
    revoke = schema["paths"]["/api/v1/api-keys/{api_key_id}"]["delete"]["responses"]
    assert sorted(revoke) == ["204", "401", "403", "404"]
    scheme = schema["components"]["securitySchemes"]["ApiKeyAuth"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "x-api-key")


def test_the_compatibility_routes_have_their_own_tag(schema: dict[str, Any]) -> None:
    operations = {
        f"{method.upper()} {path}": operation
        for path, item in schema["paths"].items()
        if path.startswith("/v1/")
        for method, operation in item.items()
    }
    assert sorted(operations) == [
        "GET /v1/models",
        "GET /v1/models/{model_id}",
        "POST /v1/chat/completions",
        "POST /v1/messages",
        "POST /v1/messages/count_tokens",
    ]
    assert {tag for operation in operations.values() for tag in operation["tags"]} == {
        "compatibility"
    }
    (tag,) = [tag for tag in schema["tags"] if tag["name"] == "compatibility"]
    assert "docs/compat.md" in tag["description"]
    send = operations["POST /v1/messages"]
    assert [p["name"] for p in send["parameters"]] == [
        "anthropic-beta",
        "anthropic-version",
        "chatapi-conversation-id",
    ]


def test_export_route_is_documented(schema: dict[str, Any]) -> None:
    path = "/api/v1/conversations/{conversation_id}/export"
    assert _operation_ids(schema, path) == {"get": "conversations_export"}
    operation = schema["paths"][path]["get"]
    parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}
    assert sorted(parameters) == ["conversation_id", "format"]
    assert parameters["format"]["schema"] == {
        "enum": ["json", "markdown"],
        "type": "string",
        "default": "json",
        "minLength": 1,
    }
    assert operation["responses"]["200"]["content"] == {
        "application/json": {"schema": {"$ref": "#/components/schemas/ConversationExport"}},
        "text/markdown": {"schema": {"type": "string"}},
    }
    assert sorted(operation["responses"]) == ["200", "400", "401", "404"]
    export = schema["components"]["schemas"]["ConversationExport"]
    assert export["properties"] == {
        "conversation": {"$ref": "#/components/schemas/Conversation"},
        "messages": {"type": "array", "items": {"$ref": "#/components/schemas/Message"}},
        "totals": {"$ref": "#/components/schemas/ExportTotals"},
    }


def test_tree_routes_are_documented(schema: dict[str, Any]) -> None:
    base = "/api/v1/conversations/{conversation_id}"
    assert _operation_ids(schema, f"{base}/tree") == {"get": "conversations_tree"}
    assert _operation_ids(schema, f"{base}/fork") == {"post": "conversations_fork"}
    assert _operation_ids(schema, f"{base}/messages/{{message_id}}/regenerate") == {
        "post": "conversations_messages_regenerate"
    }
    tree = schema["paths"][f"{base}/tree"]["get"]
    assert sorted(parameter["name"] for parameter in tree["parameters"]) == [
        "after_id",
        "before_id",
        "conversation_id",
        "limit",
    ]
    listed = schema["paths"][f"{base}/messages"]["get"]
    assert "leaf_id" in {parameter["name"] for parameter in listed["parameters"]}
    regenerate = schema["paths"][f"{base}/messages/{{message_id}}/regenerate"]["post"]
    assert sorted(regenerate["responses"]) == [
        "200",
        "201",
        "202",
        "400",
        "401",
        "404",
        "409",
        "413",
        "415",
        "429",
        "502",
        "503",
    ]
    fork = schema["paths"][f"{base}/fork"]["post"]
    assert sorted(fork["responses"]) == ["201", "400", "401", "404", "409", "413", "415"]
    message = schema["components"]["schemas"]["Message"]["properties"]
    assert {"parent_id", "sibling_count", "sibling_index"} <= set(message)
    assert "current_leaf_id" in schema["components"]["schemas"]["Conversation"]["properties"]
    create = schema["components"]["schemas"]["MessageCreateRequest"]["properties"]
    assert create["parent_id"]["nullable"] is True


def test_metrics_and_docs_are_not_api_routes(schema: dict[str, Any]) -> None:
    # The API's own index is /api/v1 (and /api/v1/); `/` is the site's, not the API's. The
    # compatibility routes are at /v1/, where the SDKs look for them.
    assert [path for path in schema["paths"] if not path.startswith(("/api/v1/", "/v1/"))] == [
        "/api/v1"
    ]
    assert "/api/v1/metrics" not in schema["paths"]


def test_every_error_answer_is_the_envelope(schema: dict[str, Any]) -> None:
    # given every documented error response of every operation
    errors = [
        (f"{method.upper()} {path} {status}", response)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        for status, response in operation["responses"].items()
        if status[0] in "45"
    ]

    # then each one is the envelope, in JSON; OpenAI's shape on its compatible route, either
    # on the model list both SDKs read
    envelope_ref = {"$ref": "#/components/schemas/Error"}
    openai_ref = {"$ref": "#/components/schemas/OpenAIError"}
    assert len(errors) > 60
    for name, response in errors:
        expected: dict[str, Any] = envelope_ref
        if " /v1/chat/" in name:
            expected = openai_ref
        elif " /v1/models" in name:
            expected = {"oneOf": [envelope_ref, openai_ref]}
        assert response["content"] == {"application/json": {"schema": expected}}, name
    envelope = schema["components"]["schemas"]["Error"]
    assert envelope["required"] == ["type", "error", "request_id"]
    assert envelope["properties"]["error"]["required"] == ["type", "message"]


def test_token_routes_document_401_and_public_routes_do_not(schema: dict[str, Any]) -> None:
    with_401 = {
        operation["operationId"]
        for item in schema["paths"].values()
        for method, operation in item.items()
        if method != "parameters" and "401" in operation["responses"]
    }
    public = {"health", "ping"}

    assert public & with_401 == set()
    assert {"auth_me", "auth_logout", "auth_login", "auth_refresh"} <= with_401
    assert {"conversations_list", "usage_daily", "models_list"} <= with_401


def _view_classes() -> list[type]:
    """Every class-based view the URLconf routes to."""
    found: list[type] = []

    def walk(patterns: list[URLPattern | URLResolver]) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns)
            elif hasattr(pattern.callback, "cls"):
                found.append(pattern.callback.cls)

    walk(get_resolver().url_patterns)
    return found


def _operations(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{method.upper()} {path}": operation
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method != "parameters"
    }


def test_every_operation_has_a_summary_and_a_description_of_its_own(
    schema: dict[str, Any],
) -> None:
    # given: what drf-spectacular would show for an operation without a description of its
    # own, the docstring of its view or of one of the view's base classes (written for the
    # code's readers: "The base class of the API's views...")
    docstrings = {
        " ".join(klass.__doc__.split())
        for view in _view_classes()
        for klass in view.__mro__
        if klass.__doc__
    }

    # then: every operation says what it does for an API user
    operations = _operations(schema)
    assert len(operations) >= 23  # every route the API has (more as routes are added)
    assert [name for name, operation in operations.items() if not operation.get("summary")] == []
    assert [
        name
        for name, operation in operations.items()
        if " ".join(operation.get("description", "").split()) in docstrings | {""}
    ] == []


def test_the_auth_operations_read_as_written_for_api_users(schema: dict[str, Any]) -> None:
    operations = _operations(schema)

    assert {
        name: operations[name]["summary"]
        for name in (
            "POST /api/v1/auth/register",
            "POST /api/v1/auth/login",
            "POST /api/v1/auth/refresh",
            "POST /api/v1/auth/logout",
            "GET /api/v1/auth/me",
        )
    } == {
        "POST /api/v1/auth/register": "Create an account",
        "POST /api/v1/auth/login": "Log in with e-mail and password",
        "POST /api/v1/auth/refresh": "Refresh a session",
        "POST /api/v1/auth/logout": "Log out",
        "GET /api/v1/auth/me": "Who am I",
    }
    login = operations["POST /api/v1/auth/login"]
    assert login["description"].startswith(
        "Trades an e-mail address and password for a session at Supabase Auth."
    )
    assert (
        login["responses"]["200"]["content"]["application/json"]["examples"]["Session"]["value"][
            "token_type"
        ]
        == "bearer"
    )
