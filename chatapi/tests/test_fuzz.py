"""Property-based fuzzing of the whole API from its own OpenAPI document (Schemathesis).

A real daphne server (testsupport.servers.LiveServer) against the test database, with the fake
Groq and the fake Supabase on loopback as its upstreams, is sent generated requests for every
operation of the OpenAPI document: valid ones and invalid ones (wrong types, out-of-range
numbers, missing and unknown fields, odd strings), authenticated with a Supabase-style ES256
access token. Every answer must be a non-5xx response whose status code, content type, headers
and body the document describes.

FUZZ_EXAMPLES bounds the examples per operation (a small default keeps CI quick); FUZZ_SEED
fixes the generator's seed (fixed by default, so a CI failure reproduces). ``make fuzz`` runs
many more examples with a fresh seed.
"""

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis import Case

from accounts.models import User
from conversations.models import Message
from testsupport.factories import make_conversation, make_message
from testsupport.fake_groq import FakeGroq
from testsupport.fake_supabase import FakeSupabase
from testsupport.servers import LiveServer

pytestmark = pytest.mark.django_db(transaction=True)

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
FUZZ_SEED = int(os.environ.get("FUZZ_SEED") or "20261126")

# Rows of the caller's that generated path parameters name most of the time, so the fuzzer
# reaches past the ownership check; the rest of the time it tries random and malformed ids.
USER_ID = uuid.UUID("5c6a1f1e-0000-4000-8000-000000000001")
CONVERSATION_ID = uuid.UUID("5c6a1f1e-0000-4000-8000-0000000000c1")


def _document() -> dict[str, Any]:
    """The OpenAPI document /api/v1/openapi.json serves."""
    generated = SchemaGenerator().get_schema(request=None, public=True)  # type: ignore[no-untyped-call]
    document: dict[str, Any] = json.loads(json.dumps(generated, default=str))
    return document


CONFIG = schemathesis.Config.from_dict(
    {
        "seed": FUZZ_SEED,
        "request-timeout": 30,
        "generation": {"mode": "all", "max-examples": FUZZ_EXAMPLES},
        # Schema-valid is not always valid: after_id with before_id, a cursor or model id
        # that does not exist. Everything else is checked.
        "checks": {"positive_data_acceptance": {"enabled": False}},
        "dictionaries": {
            "conversations": {"values": [str(CONVERSATION_ID)]},
        },
        "parameters": {
            "path.conversation_id": {"dictionary": "conversations", "probability": 0.8},
        },
    }
)
schema = schemathesis.openapi.from_dict(_document(), config=CONFIG)


@dataclass(frozen=True)
class FuzzTarget:
    server: LiveServer
    supabase: FakeSupabase
    groq: FakeGroq


@pytest.fixture(scope="module")
def fuzz_target(
    django_db_setup: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FuzzTarget]:
    """One server for the whole run, its upstreams faked on loopback."""
    supabase = FakeSupabase().start()
    groq = FakeGroq().start()
    try:
        server = LiveServer(
            env={
                "GROQ_BASE_URL": groq.base_url,
                "GROQ_API_KEY": "gsk_fuzz",
                "LLM_MAX_RETRIES": "0",
                "SUPABASE_URL": supabase.url,
                "SUPABASE_KEY": supabase.api_key,
                "LOG_LEVEL": "WARNING",
            },
            log_path=tmp_path_factory.mktemp("fuzz") / "server.log",
        )
    except BaseException:
        groq.stop()
        supabase.stop()
        raise
    yield FuzzTarget(server=server, supabase=supabase, groq=groq)
    server.stop()
    groq.stop()
    supabase.stop()


@pytest.fixture
def auth_headers(fuzz_target: FuzzTarget) -> dict[str, str]:
    """The caller, one conversation of theirs with an exchange, and their access token."""
    user = User.objects.create(id=USER_ID, email="fuzz@example.com")
    conversation = make_conversation(owner=user, id=CONVERSATION_ID, title="Fuzzed")
    make_message(conversation=conversation, role=Message.Role.USER, content="Hi")
    make_message(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        content="Hello!",
        model="openai/gpt-oss-20b",
        input_tokens=3,
        output_tokens=2,
        stop_reason="end_turn",
    )
    token = fuzz_target.supabase.token(sub=str(user.pk), email=user.email)
    return {"Authorization": f"Bearer {token}"}


@schema.parametrize()
# The fixtures hold for every example: one server, and rows the examples may change.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None, database=None)
def test_every_generated_request_is_answered_as_documented(
    case: Case[Any], fuzz_target: FuzzTarget, auth_headers: dict[str, str]
) -> None:
    case.call_and_validate(base_url=fuzz_target.server.url, headers=auth_headers)
