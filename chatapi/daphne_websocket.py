"""The WebSocket close codes a server sends in RFC 6455's registry, through daphne.

daphne closes a socket with autobahn's ``sendClose``, which takes only 1000 and
3000-4999 (codes for applications) and raises for any other: a consumer closing with 1012
(service restart) or 1013 (try again later) left the socket open and the error in the log.
These codes are the server's to send (RFC 6455 section 7.4.1, the IANA registry), and
clients act on them (1012: reconnect; 1013: reconnect later), so ``install()`` lets them
through: autobahn's own frame writer sends them, as ``sendClose`` does after its check.
daphne passes no close reason on; the code is what clients act on.

``install()`` is called by the ASGI entry point (``chatapi.asgi``), as daphne_headers is.
Under another server (uvicorn) daphne serves nothing and the change is inert.
"""

from typing import Any

# Sent by a server in RFC 6455 and the IANA registry, refused by autobahn's check.
SERVER_CLOSE_CODES = frozenset({1001, 1003, 1008, 1011, 1012, 1013})


def install() -> None:
    from daphne.ws_protocol import WebSocketProtocol

    server_close = WebSocketProtocol.serverClose

    def close(protocol: Any, code: int | None = None) -> None:
        if code in SERVER_CLOSE_CODES:
            protocol.sendCloseFrame(code=code, reasonUtf8=None, isReply=False)
        else:
            server_close(protocol, code)

    # daphne offers no setting or hook for it; its own method is replaced.
    WebSocketProtocol.serverClose = close
