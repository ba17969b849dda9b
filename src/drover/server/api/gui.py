"""The web GUI, from the API's own origin: its built bundle (drover/gui/dist), and its page for
every deep link the GUI routes itself (`/apps/shop?status=drifted` reloads to the same view).

The bundle's assets have content hashes in their names: cached for good. The page is never
cached, so a new release is picked up at the next load. A strict CSP keeps the page to its own
scripts; what the fleet reports (unit descriptions, command output) is only ever text in it.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import anyio
from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, PlainTextResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

BUNDLE = Path(str(files("drover.gui"))) / "dist"
# The GUI's own routes (web/src/routes.ts): only these fall back to its page, so an unknown
# /api/... path stays a JSON 404.
PAGES = ["/", "/login", "/hosts", "/approvals", "/audit", "/config", "/actions"]
PAGE_TREES = ["/hosts/{rest:path}", "/apps/{rest:path}", "/actions/{rest:path}"]
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
NOT_BUILT = (
    "The GUI is not built in this installation ({bundle}): run `make gui` (or `npm ci && npm "
    "run build` in web/). The API is at /api/v1, its documentation at /docs.\n"
)


class _Assets(StaticFiles):
    async def check_config(self) -> None:
        # No bundle built: every asset is simply not there (404), not a server error.
        if self.directory is not None and await anyio.Path(self.directory).is_dir():
            await super().check_config()

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
            response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def mount_gui(app: FastAPI, bundle: Path = BUNDLE) -> None:
    """Serve the bundle at /, its assets at /assets; or say how to build it when it is not."""
    index = bundle / "index.html"
    pages = APIRouter(include_in_schema=False)

    async def page() -> Response:
        if not await anyio.Path(index).is_file():
            return PlainTextResponse(NOT_BUILT.format(bundle=bundle), status_code=404)
        return FileResponse(index, media_type="text/html", headers=PAGE_HEADERS)

    for path in PAGES + PAGE_TREES:
        pages.add_api_route(path, page, methods=["GET"])
    icon = bundle / "favicon.svg"

    async def favicon() -> Response:
        if not await anyio.Path(icon).is_file():
            return PlainTextResponse("no icon\n", status_code=404)
        return FileResponse(icon, headers={"Cache-Control": "public, max-age=86400"})

    pages.add_api_route("/favicon.svg", favicon, methods=["GET"])
    app.include_router(pages)
    # The same routes whether or not the bundle is built: a missing asset is a 404.
    app.mount("/assets", _Assets(directory=bundle / "assets", check_dir=False), name="assets")
