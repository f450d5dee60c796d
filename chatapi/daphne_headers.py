"""Request headers over daphne's limit answered with 431 in the API's error envelope.

daphne reads requests with Twisted's ``HTTPChannel``, which takes at most 16,384 bytes for
one header line and for the request line and headers together (``LineReceiver.MAX_LENGTH``,
``HTTPChannel.totalHeadersSize``). Over the first it dropped the connection without a word
(a 20 KB ``Authorization`` header: the client saw "connection reset" or an empty reply); over
the second it wrote a bare ``400 Bad Request`` with no body. Neither limit can be set from
daphne's command line, and the request never reaches Django, so the answer is written here,
at the connection: ``431 Request Header Fields Too Large`` (RFC 6585) with the envelope,
then the connection closes, as Twisted does.

Twisted also parses the body of every POST whose Content-Type is a form
(``application/x-www-form-urlencoded``, ``multipart/form-data``) into ``request.args``, and
reads the Content-Type with the e-mail package's header parser to decide (about 0.15 ms of
CPU per POST, JSON ones included). daphne never reads ``args``: it hands the raw body to the
application. ``install()`` turns that parsing off for daphne's requests, so a malformed form
body reaches the API, which answers it in the error envelope, instead of Twisted's bare 400.

Twisted's HTTP factory formats a combined-log-format line for every request and hands it to
Twisted's log, which daphne sends nowhere (chatapi writes its own access line, with the
request id and route: ``chatapi.middleware``). ``install()`` turns that line off.

``install()`` is called by the ASGI entry point (``chatapi.asgi``), which daphne and
``runserver`` import before they listen. Under another server (uvicorn) Twisted serves nothing
and the change is inert; such a server has limits and answers of its own.
"""

import json
from typing import Any

from chatapi.errors import error_body
from chatapi.middleware import REQUEST_ID_HEADER, new_request_id

# Twisted's limits, which this module keeps and only answers for.
MAX_HEADER_BYTES = 16384


def too_large_response() -> bytes:
    """The whole HTTP/1.1 response: status line, headers and the envelope."""
    request_id = new_request_id()
    body = json.dumps(
        error_body(
            status_code=431,
            error_type="request_too_large",
            message=(
                f"The request's headers are larger than {MAX_HEADER_BYTES} bytes "
                "(one header, or all of them together)."
            ),
            request_id=request_id,
        ),
        separators=(",", ":"),
    ).encode()
    head = (
        "HTTP/1.1 431 Request Header Fields Too Large\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"{REQUEST_ID_HEADER}: {request_id}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


def install() -> None:
    from daphne.http_protocol import HTTPFactory, WebRequest
    from twisted.web.http import HTTPChannel

    start_factory = HTTPFactory.startFactory

    def start_factory_without_access_log(factory: Any) -> None:
        start_factory(factory)
        factory._logFile = None  # Twisted's own switch: no log file, no line

    HTTPFactory.startFactory = start_factory_without_access_log

    request_init = WebRequest.__init__

    def request_init_without_form_parsing(request: Any, *args: Any, **kwargs: Any) -> None:
        request_init(request, *args, **kwargs)
        request._parsePOSTFormSubmission = False  # Twisted's own switch (its Site's argument)

    WebRequest.__init__ = request_init_without_form_parsing

    respond_bad_request = HTTPChannel._respondToBadRequestAndDisconnect

    def refuse_too_large(channel: Any, line: bytes = b"") -> None:
        channel.transport.write(too_large_response())
        channel.loseConnection()

    def respond_to_bad_request(channel: Any) -> None:
        # Twisted's one answer to every malformed request: tell the size case apart.
        if channel._receivedHeaderSize > channel.totalHeadersSize:
            refuse_too_large(channel)
        else:
            respond_bad_request(channel)  # type: ignore[no-untyped-call]

    # Twisted offers no setting or hook for either answer; its own methods are replaced.
    HTTPChannel.lineLengthExceeded = refuse_too_large  # type: ignore[method-assign]
    HTTPChannel._respondToBadRequestAndDisconnect = respond_to_bad_request  # type: ignore[method-assign]
