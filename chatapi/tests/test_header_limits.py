"""What daphne (Twisted) used to answer by itself, against a real daphne server. Request
headers over its 16,384-byte limit: the client gets 431 in the error envelope and the
connection closes (it used to be dropped without a response); under the limit, the request
reaches the API as usual. A malformed form body reaches the API too, and Twisted no longer
formats an access line of its own."""

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from accounts.models import User
from testsupport.servers import LiveServer

pytestmark = pytest.mark.django_db(transaction=True)

TOO_LARGE_MESSAGE = (
    "The request's headers are larger than 16384 bytes (one header, or all of them together)."
)


@pytest.fixture(scope="module")
def server(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(env={}, log_path=tmp_path_factory.mktemp("headers") / "server.log")
    yield live
    live.stop()


def exchange(
    server: LiveServer,
    headers: dict[str, str],
    *,
    request_line: str = "GET /api/v1/auth/me HTTP/1.1",
    body: bytes = b"",
) -> tuple[str, dict[str, str], bytes]:
    """One raw HTTP/1.1 request; the status line, headers and body of what comes back before
    the server closes the connection."""
    lines = [request_line, "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(request)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    answered = dict(line.lower().split(": ", 1) for line in header_lines)
    return status_line, answered, body


def assert_too_large(status_line: str, headers: dict[str, str], body: bytes) -> None:
    assert status_line == "HTTP/1.1 431 Request Header Fields Too Large"
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    assert json.loads(body) == {
        "type": "error",
        "error": {"type": "request_too_large", "message": TOO_LARGE_MESSAGE},
        "request_id": headers["request-id"],
    }


def test_a_20_kb_authorization_header_is_431_in_the_envelope(server: LiveServer) -> None:
    assert_too_large(*exchange(server, {"Authorization": "Bearer " + "a" * 20_000}))


def test_headers_over_16_kb_together_are_431_in_the_envelope(server: LiveServer) -> None:
    headers = {f"X-Filler-{number}": "b" * 1000 for number in range(20)}

    assert_too_large(*exchange(server, headers))


def test_a_15_kb_authorization_header_reaches_the_api(server: LiveServer) -> None:
    status_line, _, body = exchange(server, {"Authorization": "Bearer " + "a" * 15_000})

    assert status_line == "HTTP/1.1 401 Unauthorized"
    assert json.loads(body)["error"]["type"] == "authentication_error"


def test_a_malformed_request_line_is_still_twisteds_400(server: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(b"NOT A REQUEST LINE AT ALL\r\n\r\n")
        received = connection.recv(65536)

    assert received == b"HTTP/1.1 400 Bad Request\r\n\r\n"


def test_a_malformed_form_body_reaches_the_api(
    server: LiveServer, user: User, make_token: Any
) -> None:
    # Twisted's form parsing (off under chatapi) answered a bare 400 and hung up.
    body = b"--x\r\nnot a part\r\n"
    headers = {
        "Content-Type": "multipart/form-data",
        "Authorization": f"Bearer {make_token(user)}",
        "Content-Length": str(len(body)),
    }

    status_line, _, answer = exchange(
        server, headers, request_line="POST /api/v1/conversations HTTP/1.1", body=body
    )

    assert status_line.startswith("HTTP/1.1 415 ")
    assert json.loads(answer)["error"]["type"] == "invalid_request_error"


def test_twisteds_own_access_line_is_not_formatted() -> None:
    # daphne sends Twisted's log nowhere; chatapi's access line is the request's one line.
    from daphne.http_protocol import HTTPFactory

    import chatapi.asgi  # noqa: F401 - the entry point daphne imports installs the change

    factory = HTTPFactory(server=None)
    factory.startFactory()
    try:
        assert factory._logFile is None
    finally:
        factory.stopFactory()
