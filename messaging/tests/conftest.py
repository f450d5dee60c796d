from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from accounts.models import User
from conversations.models import Conversation
from conversations.services import conversation_create
from testsupport.fake_groq import FakeGroq
from testsupport.helpers import MODEL, close_connection


@pytest.fixture
def groq_providers(settings, fake_groq: FakeGroq) -> None:
    """The groq provider pointed at the fake, with short timeouts and quick retries."""
    settings.LLM_PROVIDERS = {
        "groq": {
            "class": "messaging.llm.openai_compat.GroqClient",
            "base_url": fake_groq.base_url,
            "api_key": "gsk_test",
            "read_timeout": 2.0,
            "max_retries": 1,
            "retry_base_delay": 0.01,
            "retry_max_delay": 0.05,
        },
    }


@pytest_asyncio.fixture
async def close_worker_connection() -> AsyncIterator[None]:
    """Async tests' sync_to_async calls share one worker thread; close its connection after
    each test so none outlives the test database."""
    yield
    await close_connection()


@pytest.fixture
def conversation(user: User) -> Conversation:
    return conversation_create(owner=user, model=MODEL)


@pytest.fixture
def auth(make_token, user: User) -> dict[str, str]:
    return {"authorization": f"Bearer {make_token(user)}"}
