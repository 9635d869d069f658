"""The marketers' admin page at `/admin/`: static HTML, CSS and JavaScript modules, no build step.

The page itself is public and holds no data: everything it shows comes from the JSON API, called
by its scripts with the marketer key the user signs in with. So these routes skip API auth, and
send a Content-Security-Policy that lets the page run only its own scripts and talk only to its
own origin — the page holds a key, and nothing else gets to run beside it.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Annotated, Any, NamedTuple

from litestar import MediaType, Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, HeaderParameter
from litestar.status_codes import HTTP_304_NOT_MODIFIED, HTTP_308_PERMANENT_REDIRECT

from plugin.api.members import etag_matches
from plugin.auth import EXCLUDE_FROM_AUTH

ASSETS = Path(__file__).parent / "static" / "admin"
MEDIA_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidate every time (a 304 is cheap): a new Patron version is picked up at once.
    "Cache-Control": "no-cache",
}
_OPT = {EXCLUDE_FROM_AUTH: True}
IfNoneMatch = Annotated[str | None, HeaderParameter(name="If-None-Match")]


class Asset(NamedTuple):
    body: bytes
    media_type: str
    etag: str


@functools.cache
def assets() -> dict[str, Asset]:
    """The page's files by name, read once. Only the files in the directory are served, by their
    exact name: there are no subdirectories and no path to traverse."""
    files = sorted(path for path in ASSETS.iterdir() if path.suffix in MEDIA_TYPES)
    return {
        path.name: Asset(
            body=(body := path.read_bytes()),
            media_type=MEDIA_TYPES[path.suffix],
            etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"',
        )
        for path in files
    }


def _serve(name: str, if_none_match: str | None) -> Response[bytes]:
    asset = assets().get(name)
    if asset is None:
        raise NotFoundException(f"the admin page has no file {name}")
    headers = HEADERS | {"ETag": asset.etag}
    if etag_matches(if_none_match, asset.etag):
        return Response(b"", status_code=HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


@get("/admin", opt=_OPT, include_in_schema=False, sync_to_thread=False)
def admin_page(request: Request[Any, Any, Any], if_none_match: IfNoneMatch = None) -> Response[bytes]:
    """The page, at `admin/` so that its files and the API resolve relative to it wherever Patron
    is mounted (`/admin` redirects there)."""
    # Litestar routes `/admin/` here with the slash stripped from `path`; the server's raw path
    # (which every ASGI server we run sends) still has it.
    raw_path: bytes = request.scope.get("raw_path") or b"/"
    if not raw_path.partition(b"?")[0].endswith(b"/"):
        return Response(
            b"",
            status_code=HTTP_308_PERMANENT_REDIRECT,
            media_type=MediaType.TEXT,
            headers={"Location": "admin/"},
        )
    return _serve("index.html", if_none_match)


@get("/admin/{name:str}", opt=_OPT, include_in_schema=False, sync_to_thread=False)
def admin_asset(name: FromPath[str], if_none_match: IfNoneMatch = None) -> Response[bytes]:
    """One of the page's scripts or its stylesheet."""
    return _serve(name, if_none_match)
