"""The ReDoc page's bundle: the sidecar's, asking no other host for its badge's logo."""

from django.test import Client


def test_redoc_page_runs_the_bundle_served_here() -> None:
    page = Client().get("/redoc").content.decode()

    assert '<script src="/redoc/redoc.standalone.js"></script>' in page
    assert "googleapis" not in page


def test_redoc_bundle_names_no_other_hosts_logo() -> None:
    response = Client().get("/redoc/redoc.standalone.js")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/javascript"
    assert response["Cache-Control"] == "public, max-age=86400"
    assert b"cdn.redoc.ly" not in response.content
    assert response.content.count(b'src:"data:,"') == 1
