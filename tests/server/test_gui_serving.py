"""The GUI's bundle served from the API's origin: its page at every deep link, assets cached
for good, the page never, a strict CSP — and the API's own 404s left as they are."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from drover.server.api.gui import mount_gui


def bundle_in(root: Path) -> Path:
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>drover</title><div id=app></div>")
    (root / "assets" / "index-abc123.js").write_text("console.log('drover')")
    (root / "favicon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    return root


async def client_of(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gui")


@pytest.fixture
async def gui(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()

    @app.get("/api/v1/known")
    async def known() -> dict[str, str]:
        return {"ok": "yes"}

    mount_gui(app, bundle_in(tmp_path / "dist"))
    async with await client_of(app) as client:
        yield client


@pytest.mark.parametrize(
    "path", ["/", "/login", "/hosts", "/hosts/web-01", "/apps/shop", "/actions/a1", "/config"]
)
async def test_every_gui_route_answers_with_its_page(gui: httpx.AsyncClient, path: str) -> None:
    page = await gui.get(path, params={"status": "drifted"})
    assert page.status_code == 200
    assert page.text.startswith("<!doctype html>")
    assert page.headers["cache-control"] == "no-cache"
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY"


async def test_assets_are_cached_for_good_and_missing_ones_are_404(gui: httpx.AsyncClient) -> None:
    asset = await gui.get("/assets/index-abc123.js")
    assert asset.status_code == 200
    assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert asset.headers["x-content-type-options"] == "nosniff"
    assert (await gui.get("/assets/nope.js")).status_code == 404
    assert (await gui.get("/favicon.svg")).status_code == 200


async def test_api_paths_are_not_taken_for_pages(gui: httpx.AsyncClient) -> None:
    assert (await gui.get("/api/v1/known")).json() == {"ok": "yes"}
    missing = await gui.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/json"
    assert (await gui.get("/elsewhere")).status_code == 404


async def test_without_a_bundle_the_page_says_how_to_build_it(tmp_path: Path) -> None:
    app = FastAPI()
    mount_gui(app, tmp_path / "not-built")
    async with await client_of(app) as client:
        page = await client.get("/")
        assert page.status_code == 404
        assert "make gui" in page.text
        assert (await client.get("/assets/x.js")).status_code == 404
        assert (await client.get("/favicon.svg")).status_code == 404
