"""API key revocation across real server processes: two daphne servers on loopback sharing
the test PostgreSQL and Redis (as production runs several)."""

import os
import time
from pathlib import Path

import httpx
import pytest

from accounts.models import User
from accounts.services import api_key_create
from testsupport.servers import LiveServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live_database]

REDIS_URL = os.environ.get("REDIS_URL")


def test_a_key_revoked_on_one_process_is_refused_by_another_within_a_second(
    tmp_path: Path, user: User, make_token
) -> None:
    # given: two server processes, each of which has just accepted the key
    env = {"LOG_LEVEL": "WARNING"} | ({"REDIS_URL": REDIS_URL} if REDIS_URL else {})
    a = LiveServer(env=env, log_path=tmp_path / "a.log")
    b = LiveServer(env=env, log_path=tmp_path / "b.log")
    try:
        api_key, secret = api_key_create(user=user, name="k", scopes=["conversations:read"])
        key = {"x-api-key": secret}
        accepted = [httpx.get(f"{s.url}/api/v1/conversations", headers=key) for s in (a, b)]

        # when: revoked through A
        revoked = httpx.delete(
            f"{a.url}/api/v1/api-keys/{api_key.pk}",
            headers={"Authorization": f"Bearer {make_token(user)}"},
        )
        revoked_at = time.monotonic()

        # then: B refuses it within a second
        while True:
            refused = httpx.get(f"{b.url}/api/v1/conversations", headers=key)
            if refused.status_code == 401 or time.monotonic() - revoked_at > 1.0:
                break
            time.sleep(0.05)
        elapsed = time.monotonic() - revoked_at
    finally:
        a.stop()
        b.stop()

    assert [r.status_code for r in accepted] == [200, 200]
    assert revoked.status_code == 204
    assert refused.status_code == 401
    assert refused.json()["error"]["message"] == "This API key has been revoked."
    assert elapsed <= 1.0
