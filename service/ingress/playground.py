"""The playground (issue 9): a page at `/` of the REST app where a person tries every generator.

The page is three static files of `service/playground/` (no build step, no external assets), read once when
the app is made and served without auth, so that an API key can be typed into the page; everything it
shows comes from the public REST API, called with relative URLs (it works under a route prefix).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Response
from starlette.types import Scope

PAGE_DIR = Path(__file__).resolve().parent.parent / "playground"
PAGE = "index.html"
ASSETS = {"playground.js": "text/javascript; charset=utf-8", "playground.css": "text/css; charset=utf-8"}
ASSET_PREFIX = "/playground/"
# the page loads its own files and talks to its own origin only; images are data: URLs, media blob: URLs
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
                               "media-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def is_page_path(scope: Scope) -> bool:
    """Whether the request asks for the page or one of its files (served without an API key). The path is
    taken relative to the route prefix (`root_path`): `/limited`, `/limited/` and `/limited/playground/...`."""
    path, root = str(scope.get("path", "")), str(scope.get("root_path", ""))
    route = path[len(root):] if root and path.startswith(root) else path
    return route in ("", "/") or (route.startswith(ASSET_PREFIX) and route[len(ASSET_PREFIX):] in ASSETS)


def add_playground_routes(app: FastAPI) -> None:
    """Serve the page at `/` and its files at `/playground/<name>` (left out of the OpenAPI schema)."""
    files = {name: (PAGE_DIR / name).read_bytes() for name in (PAGE, *ASSETS)}

    def serve(name: str, media_type: str) -> Response:
        return Response(files[name], media_type=media_type, headers=HEADERS)

    @app.get("/", include_in_schema=False)
    async def playground_page() -> Response:
        return serve(PAGE, "text/html; charset=utf-8")

    def route(name: str, media_type: str) -> Callable[[], Awaitable[Response]]:
        async def asset() -> Response:  # no parameters: nothing of the request picks the file
            return serve(name, media_type)
        return asset

    for name, media_type in ASSETS.items():
        app.add_api_route(ASSET_PREFIX + name, route(name, media_type), methods=["GET"], include_in_schema=False)
