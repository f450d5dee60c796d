"""A stand-in for a Supabase project, served over real HTTP on loopback.

It answers the routes this API calls, with the bodies Supabase sends
(https://supabase.com/docs/reference/api, auth):

- ``GET /auth/v1/.well-known/jwks.json``: the public halves of an ES256 (P-256) and an RS256
  signing key, each with ``kid`` and ``alg``; keys can be rotated in and the endpoint taken down.
- GoTrue: ``POST /auth/v1/signup``, ``POST /auth/v1/token?grant_type=password|refresh_token``
  and ``POST /auth/v1/logout``, each requiring the ``apikey`` header, over an in-memory user
  store. Sessions carry access tokens signed with the current ES256 key and single-use
  refresh tokens; errors use GoTrue's ``{"code", "error_code", "msg"}`` bodies.
"""

import base64
import hashlib
import hmac
import json
import secrets
import socketserver
import threading
import time
import uuid
from dataclasses import dataclass, field
from functools import cache
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

API_KEY = "fake-anon-key-for-tests"
SESSION_SECONDS = 3600

# A client timeout for the tests of the slow modes, which hold a request far longer.
SHORT_TIMEOUT = 0.3

JwksMode = Literal["up", "error", "drop", "slow", "not_a_key_set"]
GoTrueMode = Literal["normal", "rate_limited", "error", "slow", "drop"]


@cache
def _rsa_private_key() -> rsa.RSAPrivateKey:
    # Generating a 2048-bit key costs ~0.1 s: one per test session is enough.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class SigningKey:
    """A private key the fake signs with; its public half is what the JWKS publishes."""

    kid: str
    algorithm: Literal["ES256", "RS256"]
    private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

    @classmethod
    def es256(cls, kid: str | None = None) -> "SigningKey":
        return cls(
            kid=kid or f"es256-{secrets.token_hex(4)}",
            algorithm="ES256",
            private_key=ec.generate_private_key(ec.SECP256R1()),
        )

    @classmethod
    def rs256(cls, kid: str | None = None) -> "SigningKey":
        return cls(
            kid=kid or f"rs256-{secrets.token_hex(4)}",
            algorithm="RS256",
            private_key=_rsa_private_key(),
        )

    def public_jwk(self) -> dict[str, Any]:
        """As Supabase publishes it: the public key plus kid, alg, use and key_ops."""
        public_key = self.private_key.public_key()
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            jwk = jwt.algorithms.ECAlgorithm.to_jwk(public_key, as_dict=True)
        else:
            jwk = jwt.algorithms.RSAAlgorithm.to_jwk(public_key, as_dict=True)
        jwk.pop("key_ops", None)
        return {
            **jwk,
            "kid": self.kid,
            "alg": self.algorithm,
            "use": "sig",
            "key_ops": ["verify"],
            "ext": True,
        }

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: dict[str, Any], *, headers: dict[str, Any] | None = None) -> str:
        return jwt.encode(
            claims,
            self.private_key,
            algorithm=self.algorithm,
            headers={"kid": self.kid, "typ": "JWT", **(headers or {})},
        )


def sign_hs256_raw(claims: dict[str, Any], secret: bytes, header: dict[str, Any]) -> str:
    """An HS256 JWT signed by hand, for keys PyJWT refuses to use as HMAC secrets (a PEM
    public key: the algorithm-confusion attack) and for headers it would rewrite."""
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    signature = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(signature)}"


def unsigned_token(claims: dict[str, Any], header: dict[str, Any]) -> str:
    """A JWT with an empty signature segment, as ``alg: none`` tokens are."""
    return (
        ".".join(
            _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        )
        + "."
    )


@dataclass
class FakeUser:
    id: str
    email: str
    password: str
    user_metadata: dict[str, Any]
    created_at: str
    email_confirmed_at: str | None

    def as_json(self) -> dict[str, Any]:
        """GoTrue's user object (the fields its API returns, not all of them)."""
        return {
            "id": self.id,
            "aud": "authenticated",
            "role": "authenticated",
            "email": self.email,
            "email_confirmed_at": self.email_confirmed_at,
            "phone": "",
            "confirmed_at": self.email_confirmed_at,
            "app_metadata": {"provider": "email", "providers": ["email"]},
            "user_metadata": self.user_metadata,
            "identities": [],
            "created_at": self.created_at,
            "updated_at": self.created_at,
            "is_anonymous": False,
        }


@dataclass
class RefreshToken:
    user_id: str
    session_id: str
    used: bool = False


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeSupabase:
    """The fake's state; tests flip its modes and read what it received."""

    es256_key: SigningKey = field(default_factory=lambda: SigningKey.es256("es256-key-1"))
    rs256_key: SigningKey = field(default_factory=lambda: SigningKey.rs256("rs256-key-1"))
    api_key: str = API_KEY
    jwks_mode: JwksMode = "up"
    gotrue_mode: GoTrueMode = "normal"
    # With e-mail confirmation on, sign-up answers with the user alone and login is refused
    # until the address is confirmed.
    confirm_email: bool = False
    min_password_length: int = 6
    retry_after_seconds: int = 17
    slow_seconds: float = 5.0
    published: list[SigningKey] = field(default_factory=list)
    # Served after the published keys, as they are: entries no verifier can use.
    extra_jwks_entries: list[Any] = field(default_factory=list)
    jwks_fetches: int = 0
    requests: list[RecordedRequest] = field(default_factory=list)
    users: dict[str, FakeUser] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)
    sessions: dict[str, str] = field(default_factory=dict)  # session id -> user id
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _release: threading.Event = field(default_factory=threading.Event, repr=False)

    def __post_init__(self) -> None:
        if not self.published:
            self.published = [self.es256_key, self.rs256_key]

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> "FakeSupabase":
        fake = self

        class Handler(_Handler):
            supabase = fake

        self._server = _LoopbackServer(("127.0.0.1", 0), Handler)
        # A short poll interval makes stop() (server.shutdown) return promptly.
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        self._release.set()  # wakes handlers held by the slow mode
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def issuer(self) -> str:
        return f"{self.url}/auth/v1"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/auth/v1/.well-known/jwks.json"

    # --- keys and tokens -----------------------------------------------------------------

    def rotate(self) -> SigningKey:
        """Publish a new ES256 key and sign sessions with it; older keys stay published."""
        new_key = SigningKey.es256()
        with self._lock:
            self.published = [new_key, *self.published]
            self.es256_key = new_key
        return new_key

    def unpublish(self, key: SigningKey) -> None:
        with self._lock:
            self.published = [k for k in self.published if k.kid != key.kid]

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """The claims of a Supabase access token for a password sign-in; ``None`` drops one."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": "authenticated",
            "exp": now + SESSION_SECONDS,
            "iat": now,
            "sub": str(uuid.uuid4()),
            "email": "ada@example.com",
            "phone": "",
            "app_metadata": {"provider": "email", "providers": ["email"]},
            "user_metadata": {},
            "role": "authenticated",
            "aal": "aal1",
            "amr": [{"method": "password", "timestamp": now}],
            "session_id": str(uuid.uuid4()),
            "is_anonymous": False,
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def token(
        self,
        *,
        key: SigningKey | None = None,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """An access token signed with ``key`` (default: the current ES256 key)."""
        return (key or self.es256_key).sign(self.claims(**claims), headers=headers)

    def _verify_access_token(self, token: str) -> dict[str, Any] | None:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = next(k for k in self.published if k.kid == kid)
            claims: dict[str, Any] = jwt.decode(
                token,
                key.private_key.public_key(),
                algorithms=[key.algorithm],
                audience="authenticated",
                issuer=self.issuer,
            )
        except (jwt.PyJWTError, StopIteration):
            return None
        return claims

    # --- GoTrue --------------------------------------------------------------------------

    def add_user(
        self, email: str, password: str, *, confirmed: bool = True, **user_metadata: Any
    ) -> FakeUser:
        now = _timestamp()
        user = FakeUser(
            id=str(uuid.uuid4()),
            email=email,
            password=password,
            user_metadata=user_metadata,
            created_at=now,
            email_confirmed_at=now if confirmed else None,
        )
        with self._lock:
            self.users[email] = user
        return user

    def _session_for(self, user: FakeUser, session_id: str | None = None) -> dict[str, Any]:
        session_id = session_id or str(uuid.uuid4())
        refresh_token = secrets.token_urlsafe(9)
        self.sessions[session_id] = user.id
        self.refresh_tokens[refresh_token] = RefreshToken(user.id, session_id)
        access_token = self.token(
            sub=user.id,
            email=user.email,
            user_metadata=user.user_metadata,
            session_id=session_id,
        )
        return {
            "access_token": access_token,
            "token_type": "bearer",
            "expires_in": SESSION_SECONDS,
            "expires_at": int(time.time()) + SESSION_SECONDS,
            "refresh_token": refresh_token,
            "user": user.as_json(),
        }

    def handle_gotrue(
        self, path: str, query: dict[str, list[str]], headers: dict[str, str], body: Any
    ) -> tuple[int, dict[str, Any] | None]:
        with self._lock:
            if path == "/auth/v1/signup":
                return self._signup(body)
            if path == "/auth/v1/token":
                grant_type = query.get("grant_type", [""])[0]
                if grant_type == "password":
                    return self._password_grant(body)
                if grant_type == "refresh_token":
                    return self._refresh_grant(body)
                return _gotrue_error(400, "validation_failed", "unsupported_grant_type")
            if path == "/auth/v1/logout":
                return self._logout(query, headers)
        return 404, {"code": 404, "error_code": "not_found", "msg": "Not Found"}

    def _signup(self, body: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        email, password = body.get("email"), body.get("password")
        if not isinstance(email, str) or not isinstance(password, str):
            return _gotrue_error(400, "validation_failed", "Signup requires a valid password")
        if len(password) < self.min_password_length:
            status, error = _gotrue_error(
                422,
                "weak_password",
                f"Password should be at least {self.min_password_length} characters.",
            )
            assert error is not None
            return status, {**error, "weak_password": {"reasons": ["length"]}}
        if email in self.users:
            return _gotrue_error(422, "user_already_exists", "User already registered")
        now = _timestamp()
        user = FakeUser(
            id=str(uuid.uuid4()),
            email=email,
            password=password,
            user_metadata=body.get("data") or {},
            created_at=now,
            email_confirmed_at=None if self.confirm_email else now,
        )
        self.users[email] = user
        if self.confirm_email:
            return 200, {**user.as_json(), "confirmation_sent_at": now}
        return 200, self._session_for(user)

    def _password_grant(self, body: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        user = self.users.get(body.get("email", ""))
        if user is None or not hmac.compare_digest(user.password, str(body.get("password"))):
            return _gotrue_error(400, "invalid_credentials", "Invalid login credentials")
        if user.email_confirmed_at is None:
            return _gotrue_error(400, "email_not_confirmed", "Email not confirmed")
        return 200, self._session_for(user)

    def _refresh_grant(self, body: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        token = self.refresh_tokens.get(str(body.get("refresh_token")))
        if token is None or token.session_id not in self.sessions:
            return _gotrue_error(
                400, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found"
            )
        if token.used:
            return _gotrue_error(
                400, "refresh_token_already_used", "Invalid Refresh Token: Already Used"
            )
        # Strictly single use: real GoTrue tolerates a reuse within
        # GOTRUE_SECURITY_REFRESH_TOKEN_REUSE_INTERVAL (10 s); the fake has no such grace.
        token.used = True
        user = next(u for u in self.users.values() if u.id == token.user_id)
        return 200, self._session_for(user, session_id=token.session_id)

    def _logout(
        self, query: dict[str, list[str]], headers: dict[str, str]
    ) -> tuple[int, dict[str, Any] | None]:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return _gotrue_error(401, "no_authorization", "This endpoint requires a Bearer token")
        claims = self._verify_access_token(token)
        if claims is None:
            return _gotrue_error(403, "bad_jwt", "invalid JWT: unable to parse or verify signature")
        session_id = claims.get("session_id")
        if session_id not in self.sessions:
            return _gotrue_error(
                403, "session_not_found", "Session from session_id claim in JWT does not exist"
            )
        scope = query.get("scope", ["local"])[0]
        user_id = self.sessions[session_id]
        if scope == "local":
            revoked = {session_id}
        else:
            revoked = {s for s, u in self.sessions.items() if u == user_id}
            if scope == "others":
                revoked.discard(session_id)
        for revoked_id in revoked:
            del self.sessions[revoked_id]
        return 204, None


def _timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


def _gotrue_error(status: int, error_code: str, msg: str) -> tuple[int, dict[str, Any] | None]:
    return status, {"code": status, "error_code": error_code, "msg": msg}


class _LoopbackServer(ThreadingHTTPServer):
    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can take a DNS round trip.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


class _Handler(BaseHTTPRequestHandler):
    supabase: FakeSupabase
    server_version = "fake-supabase"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output clean

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        fake = self.supabase
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        headers = {name.lower(): value for name, value in self.headers.items()}
        length = int(headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = raw.decode("latin-1")
        with fake._lock:
            fake.requests.append(RecordedRequest(method, parts.path, query, headers, body))

        if method == "GET" and parts.path == "/auth/v1/.well-known/jwks.json":
            self._jwks()
            return
        self._gotrue(method, parts.path, query, headers, body)

    def _jwks(self) -> None:
        fake = self.supabase
        with fake._lock:
            fake.jwks_fetches += 1
            mode = fake.jwks_mode
            keys = [key.public_jwk() for key in fake.published] + fake.extra_jwks_entries
        if mode == "drop":
            self.close_connection = True
            return
        if mode == "slow" and fake._release.wait(fake.slow_seconds):
            # Released by stop(): the client gave up long ago, answer nothing.
            self.close_connection = True
            return
        if mode == "error":
            self._send(500, {"message": "An invalid response was received from the upstream"})
            return
        if mode == "not_a_key_set":
            # As a misconfigured proxy in front of Supabase might answer.
            self._send(200, {"message": "ok"})
            return
        self._send(200, {"keys": keys}, cache_control="public, max-age=600")

    def _gotrue(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: Any,
    ) -> None:
        fake = self.supabase
        # Supabase's API gateway checks the key before GoTrue sees the request.
        apikey = headers.get("apikey")
        if apikey is None:
            self._send(
                401,
                {
                    "message": "No API key found in request",
                    "hint": "No `apikey` request header or url param was found.",
                },
            )
            return
        if not hmac.compare_digest(apikey, fake.api_key):
            self._send(
                401,
                {
                    "message": "Invalid API key",
                    "hint": "Double check your Supabase `anon` or `service_role` API key.",
                },
            )
            return
        mode = fake.gotrue_mode
        if mode == "drop":
            self.close_connection = True
            return
        if mode == "slow" and fake._release.wait(fake.slow_seconds):
            # Released by stop(): the client gave up long ago, answer nothing.
            self.close_connection = True
            return
        if mode == "rate_limited":
            self._send(
                429,
                {
                    "code": 429,
                    "error_code": "over_request_rate_limit",
                    "msg": "Request rate limit reached",
                },
                retry_after=str(fake.retry_after_seconds),
            )
            return
        if mode == "error":
            self._send(
                500,
                {
                    "code": 500,
                    "error_code": "unexpected_failure",
                    "msg": "Unexpected failure, please check server logs for more information",
                },
            )
            return
        if method != "POST" or not isinstance(body, dict):
            self._send(*_gotrue_error(400, "bad_json", "Could not parse request body as JSON"))
            return
        self._send(*fake.handle_gotrue(path, query, headers, body))

    def _send(
        self,
        status: int,
        body: dict[str, Any] | None,
        *,
        retry_after: str | None = None,
        cache_control: str | None = None,
    ) -> None:
        payload = json.dumps(body).encode() if body is not None else b""
        self.send_response(status, HTTPStatus(status).phrase)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        if cache_control is not None:
            self.send_header("Cache-Control", cache_control)
        self.end_headers()
        self.wfile.write(payload)
