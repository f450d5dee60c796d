"""The front doors: `/api/v1/` answers its index in JSON (and is in the OpenAPI document);
`/` answers a browser with a page of the same links and anything else with the JSON."""

from django.test import Client
from rest_framework.test import APIClient

INDEX = {
    "name": "chatapi",
    "version": "1.0.0",
    "links": {
        "api": "/api/v1",
        "docs": "/docs",
        "redoc": "/redoc",
        "openapi": "/api/v1/openapi.json",
        "health": "/api/v1/health",
        "admin": "/admin/",
    },
}
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def test_api_index_answers_name_version_and_links_without_a_token(
    anon_client: APIClient,
) -> None:
    for path in ("/api/v1/", "/api/v1"):
        response = anon_client.get(path)

        assert response.status_code == 200
        assert response["Content-Type"] == "application/json"
        assert response.json() == INDEX


def test_site_index_answers_curl_with_the_json() -> None:
    response = Client().get("/", HTTP_ACCEPT="*/*")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Vary"] == "Accept"
    assert response.json() == INDEX


def test_site_index_answers_a_browser_with_a_page_of_links_under_the_sites_policy() -> None:
    response = Client().get("/", HTTP_ACCEPT=BROWSER_ACCEPT)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert response["Vary"] == "Accept"
    assert response["Content-Security-Policy"].startswith("default-src 'self'; script-src 'self'")
    page = response.content.decode()
    assert "<h1>chatapi</h1>" in page
    assert "version 1.0.0" in page
    for href in ("/docs", "/redoc", "/api/v1/openapi.json", "/api/v1", "/api/v1/health", "/admin/"):
        assert f'href="{href}"' in page


def test_site_index_refuses_a_post_with_405() -> None:
    response = Client().post("/", HTTP_ACCEPT="*/*")

    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"


def test_api_index_is_in_the_openapi_document(anon_client: APIClient) -> None:
    schema = anon_client.get("/api/v1/openapi.json").json()

    operation = schema["paths"]["/api/v1"]["get"]
    assert operation["operationId"] == "api_index"
    assert operation["summary"] == "Find the API's documents"
    assert "security" not in operation  # no token needed
    example = operation["responses"]["200"]["content"]["application/json"]["examples"]
    assert example["TheIndex"]["value"] == INDEX
