"""The ReDoc page, made to load nothing from outside this server.

drf-spectacular's page links Google's web fonts (chatapi/templates/chatapi/redoc.html drops
them), and ReDoc's side menu shows an "API docs by Redocly" badge whose logo it fetches from
cdn.redoc.ly, with no option to turn it off. The page's policy would refuse that fetch, but
the browser still tries and logs the refusal as an error on every visit; so the page runs the
sidecar's bundle with the logo's address replaced by an empty image, which fails to decode
and which the badge then drops (its onError handler), leaving the text link alone.
"""

from functools import cache

from django.contrib.staticfiles import finders
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.csp import CSP
from django.views.decorators.http import require_safe
from drf_spectacular.views import SpectacularRedocView

SIDECAR_BUNDLE = "drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"
REDOCLY_LOGO_URL = b'"https://cdn.redoc.ly/redoc/logo-mini.svg"'
EMPTY_IMAGE_URL = b'"data:,"'

# ReDoc needs inline scripts and styles, and runs its search in a worker made from a blob.
REDOC_CONTENT_SECURITY_POLICY: dict[str, list[str]] = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF, "data:"],
    "worker-src": [CSP.SELF, "blob:"],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}


@cache
def redoc_bundle_source() -> bytes:
    """The sidecar's ReDoc bundle without the logo's address. Read once per process; a
    sidecar upgrade that moves the address fails here, loudly, instead of in a browser."""
    path = finders.find(SIDECAR_BUNDLE)
    if not isinstance(path, str):
        raise LookupError(f"{SIDECAR_BUNDLE} is not among the static files")
    with open(path, "rb") as bundle:  # noqa: PTH123 - a path string from the finders
        source = bundle.read()
    if source.count(REDOCLY_LOGO_URL) != 1:
        raise LookupError(f"{SIDECAR_BUNDLE} no longer names {REDOCLY_LOGO_URL.decode()} once")
    return source.replace(REDOCLY_LOGO_URL, EMPTY_IMAGE_URL)


@require_safe
def redoc_bundle(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(redoc_bundle_source(), content_type="text/javascript")
    # The bundle changes only with the sidecar's version, which is pinned.
    response["Cache-Control"] = "public, max-age=86400"
    return response


class RedocView(SpectacularRedocView):
    """drf-spectacular's ReDoc page running the bundle of ``redoc_bundle``."""

    template_name = "chatapi/redoc.html"

    @staticmethod
    def _redoc_standalone() -> str:
        return reverse("redoc-bundle")
