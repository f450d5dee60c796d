"""Every answer carries the security headers: API answers (successes, errors, streams), the
docs pages and the admin. The pages' policies still let them work offline: the browser
tests (test_browser.py) drive Swagger UI, ReDoc and the admin under them."""

from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import User
from testsupport.factories import make_exchange

pytestmark = pytest.mark.django_db

API_POLICY = "default-src 'none'; frame-ancestors 'none'"
SITE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
REDOC_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)


def assert_security_headers(response: Any, policy: str) -> None:
    assert response["Content-Security-Policy"] == policy
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_api_answers_of_every_kind_forbid_loading_and_framing(
    api_client: APIClient, anon_client: APIClient, user: User
) -> None:
    # given
    conversation = make_exchange(user)

    # when: a success, a created, a list, the schema, a 400, 401, 404, 405, 413 and 415
    answers = {
        "200": api_client.get(f"/api/v1/conversations/{conversation.pk}"),
        "201": api_client.post("/api/v1/conversations", {}, format="json"),
        "list": api_client.get("/api/v1/conversations"),
        "export": api_client.get(f"/api/v1/conversations/{conversation.pk}/export?format=markdown"),
        "schema": anon_client.get("/api/v1/openapi.json"),
        "400": api_client.get("/api/v1/conversations?limit=0"),
        "401": anon_client.get("/api/v1/conversations"),
        "404": api_client.get("/api/v1/conversations/nope"),
        "405": api_client.put("/api/v1/conversations"),
        "415": api_client.post("/api/v1/conversations", "x", content_type="text/plain"),
    }

    # then
    assert {name: response.status_code for name, response in answers.items()} == {
        "200": 200,
        "201": 201,
        "list": 200,
        "export": 200,
        "schema": 200,
        "400": 400,
        "401": 401,
        "404": 404,
        "405": 405,
        "415": 415,
    }
    for response in answers.values():
        assert_security_headers(response, API_POLICY)


def test_an_oversized_body_answer_keeps_the_headers(settings, api_client: APIClient) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048

    response = api_client.post(
        "/api/v1/conversations", '{"title": "' + "x" * 4096 + '"}', content_type="application/json"
    )

    assert response.status_code == 413
    assert_security_headers(response, API_POLICY)


def test_swagger_ui_page_and_its_script_run_under_the_site_policy() -> None:
    # when
    page = Client().get("/docs")
    script = Client().get("/docs?script=")

    # then: no inline script on the page; the start-up script is a file of its own
    assert page.status_code == 200
    assert_security_headers(page, SITE_POLICY)
    html = page.content.decode()
    assert '<script src="/docs?script="></script>' in html
    assert "<script>" not in html
    assert script.status_code == 200
    assert script["Content-Type"] == "application/javascript"
    assert "SwaggerUIBundle" in script.content.decode()
    assert_security_headers(script, SITE_POLICY)


def test_redoc_page_has_its_own_policy_as_a_header() -> None:
    response = Client().get("/redoc")

    assert response.status_code == 200
    assert_security_headers(response, REDOC_POLICY)
    assert 'http-equiv="Content-Security-Policy"' not in response.content.decode()


def test_admin_pages_carry_the_site_policy() -> None:
    # given
    User.objects.create_superuser("root", "root@example.com", "correct horse battery")
    client = Client()

    # when
    redirect = client.get("/admin/")
    login = client.get("/admin/login/")
    client.login(username="root", password="correct horse battery")
    index = client.get("/admin/")
    dashboard = client.get("/admin/usage/usagerecord/dashboard/")

    # then
    assert (redirect.status_code, login.status_code) == (302, 200)
    assert (index.status_code, dashboard.status_code) == (200, 200)
    for response in (redirect, login, index, dashboard):
        assert_security_headers(response, SITE_POLICY)


def test_static_files_and_the_health_check_carry_the_headers() -> None:
    static = Client().get("/static/admin/css/base.css")
    health = Client().get("/api/v1/health")

    assert static.status_code == 200
    assert static["X-Content-Type-Options"] == "nosniff"
    assert static["Content-Security-Policy"] == SITE_POLICY
    assert_security_headers(health, API_POLICY)
