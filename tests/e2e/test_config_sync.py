"""A config commit that fails validation never replaces the active config."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from drover.bus.embedded import EmbeddedNats
from tests.config.gitrepo import GitRepo
from tests.conftest import eventually
from tests.e2e.conftest import shop_config
from tests.harness import Fleet

Journaled = Callable[[str], tuple[list[str], Path]]


async def test_a_bad_commit_keeps_the_last_good_revision_and_says_where(
    nats_server: EmbeddedNats, tmp_path: Path, journaled_service: Journaled
) -> None:
    web, _ = journaled_service("web")
    repo = GitRepo(tmp_path / "repo")
    good = repo.commit(shop_config(web, web), "good")
    fleet = Fleet(nats_server, tmp_path, repo.path)
    try:
        await fleet.start_server(poll=0.1)
        config = await fleet.get("/api/v1/config")
        assert config["active_revision"] == good
        assert config["source"].startswith("git ")

        bad = repo.commit({"apps/shop.yaml": "applications:\n  shop:\n    servics: {}\n"}, "typo")
        found: dict[str, Any] = {}

        async def error_shown() -> bool:
            found.update(await fleet.get("/api/v1/config"))
            return found["last_error"] is not None

        await eventually(error_shown)
        assert found["active_revision"] == good
        assert found["last_error"]["revision"] == bad
        problems = [(p["file"], p["line"], p["column"]) for p in found["last_error"]["problems"]]
        assert ("apps/shop.yaml", 3, 5) in problems
        assert any("servics" in p["message"] for p in found["last_error"]["problems"])
        assert [a["name"] for a in await fleet.get("/api/v1/applications")] == ["shop"]
        # the rejection is on record, with where and what stayed in force
        [rejected] = await fleet.get("/api/v1/audit?kind=config.rejected")
        assert rejected["subject"] == bad and rejected["detail"]["kept"] == good
        assert any("apps/shop.yaml:3:5" in p for p in rejected["detail"]["problems"])

        fixed = repo.commit(shop_config(web, web) | {"apps/extra.yaml": _extra()}, "fix")

        async def fix_active() -> bool:
            return bool((await fleet.get("/api/v1/config"))["active_revision"] == fixed)

        await eventually(fix_active)
        assert (await fleet.get("/api/v1/config"))["last_error"] is None
        names = [a["name"] for a in await fleet.get("/api/v1/applications")]
        assert names == ["extra", "shop"]
    finally:
        await fleet.close()


def _extra() -> str:
    return (
        "applications:\n  extra:\n    hosts: ['h1']\n    services:\n"
        "      job:\n        command: [sleep, '3600']\n"
    )


async def test_without_a_valid_config_yet_actions_are_refused_as_unavailable_for_now(
    nats_server: EmbeddedNats, tmp_path: Path, journaled_service: Journaled
) -> None:
    """Not the caller's fault, and not for ever: 503 with Retry-After, so that a client (or a
    balancer's retry) tries again, as it does while a server starts."""
    web, _ = journaled_service("web")
    repo = GitRepo(tmp_path / "repo")
    repo.commit({"apps/shop.yaml": "applications:\n  shop:\n    servics: {}\n"}, "typo")
    fleet = Fleet(nats_server, tmp_path, repo.path)
    try:
        await fleet.start_server(poll=0.1)
        assert fleet.http is not None
        restart = {"kind": "restart", "application": "shop"}
        refused = await fleet.http.post("/api/v1/actions", json=restart)
        assert (refused.status_code, refused.headers["Retry-After"]) == (503, "2")
        assert refused.json()["detail"].startswith("no valid configuration is active yet")
        healthz = await fleet.http.get("/healthz")
        assert (healthz.status_code, healthz.json()["config_active"]) == (503, False)

        repo.commit(shop_config(web, web), "fix")

        async def accepted() -> bool:
            assert fleet.http is not None
            return (await fleet.http.post("/api/v1/actions", json=restart)).status_code == 202

        await eventually(accepted)
    finally:
        await fleet.close()
