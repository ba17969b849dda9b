"""The web GUI's first meaningful paint with a fleet of 10,000 hosts × 20 services, timed by the
browser itself, beside raw ceilings measured in the same run.

    python -m bench.gui_paint [--hosts 10000] [--services 20] [--runs 10] [--api-samples 50]

What runs, all real: nats-server; `drover server` as a subprocess of its own (so neither the
browser's driver nor the 210,000 KV writes share its event loop, and its RSS and CPU are its
own), with a user made beforehand by `drover user add --database`; the built GUI it serves
(make gui); and Debian's Chromium (/usr/bin/chromium, headless) driven by Playwright.

The fleet: no agent runs. Each host's record and each service's state is written into the
state KV bucket as an agent would write it (tests/reports.py), heartbeat every hour and just
now, so every host is online; 2 % of the services are reported stopped under `observe`
(drifted), 0.5 % failed, the rest running. The puts go 1,000 at a time. The config folder:
`--services`/2 applications of 2 `process` services each (`sleep 3600`), in two environments,
every one placed on every host (`groups: {all: {hosts: ['*']}}`), labels declared for one host
in ten. The server starts with the group and the hosts' labels only, and the applications'
files are written once the overview counts every host online: with the applications placed
from the start, each host that joins makes the server's desired-state publisher compute every
known host's desired state again: the load slows as it grows (quadratic). While writing this
benchmark the server held 2,584 of the 10,000 hosts after 2.2 minutes; restarted onto a bucket
that already held the fleet, 5,862 after 9.
Once the applications are in, the state is the same either way. Measuring starts when
GET /api/v1/overview counts every placement in the bucket it was written for; then the server
is watched for IDLE seconds with nothing asked of it (CPU, RSS), and GET /healthz is sent
every PROBE_GAP on a new connection for PROBE_S (the server's time for it is about a
millisecond; a longer one waited for its event loop).

Each of `--runs` runs, in a new browser context every time (empty cache, its own cookies),
signed in by POST /api/v1/login through the first context's request API, the others given
its cookies:

1. Overview, cold: navigate to `/` and read, from the page's own Performance API: the mark
   `drover:overview-ready` (set by the GUI in the layout effect that follows rendering the
   overview's data: the first meaningful paint), first-contentful-paint, the navigation's
   HTML and the bundle's script responses, DOMContentLoaded, and the resource timing of the
   page's GET /api/v1/overview (start, responseEnd). An init script's MutationObserver notes
   when the first application row is in the DOM, and the first task after the next animation
   frame (the frame that paints it). All times are ms from the navigation's start.
   Then the overview again in the same context (its bundle cached: a returning user).
2. Application page, cold: `/apps/app00` (its grid of 10,000 hosts, virtualized): the first
   grid cell in the DOM and painted, the resource timing of its GET …/grid, how many grid
   rows are in the DOM then, the most <tr> elements the page held at once (the observer
   counts them at every DOM change) until AFTER later, and how many GET …/grid it made.
3. Host list, cold: `/hosts`: the same for the first host row and GET /api/v1/hosts.
4. Ceiling, cold: `/login` with no session: the bundle alone, without fleet data; its
   first-contentful-paint and the sign-in form in the DOM.

After the runs, the data alone: the very requests the pages made (their URLs as the browser
recorded them), each `--api-samples` times one after another from Python (httpx, the same
session), on one kept-alive connection as a browser does, and on a new connection each; and
GET /healthz as the floor of any request; the server's CPU time over each. Then the server's
and nats-server's RSS (VmRSS).

Prints a markdown table and writes every raw sample as JSON (`--out`, under the temp dir by
default). Every wait is bounded; everything started is stopped, also on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, async_playwright

from bench.procs import CLK_TCK, Child, IdleFigures, cpu_ticks, rss_bytes, sample_idle
from bench.stack import BENCH_USER as USER
from bench.stack import machine, start_drover, wait_until
from bench.stats import Summary
from bench.synthetic import (
    SERVICES_PER_APP,
    Expected,
    application_files,
    counted,
    fleet_files,
    populate,
)
from drover.bus.embedded import EmbeddedNats
from drover.server.api.gui import BUNDLE

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
VIEWPORT: ViewportSize = {"width": 1360, "height": 860}
APP = "app00"  # the application page measured
READY_MARK = "drover:overview-ready"
PAGE_BOUND_MS = 30_000  # the longest a page may take to show what is waited for
LOAD_BOUND = 300.0  # for every host to be online, and then for every placement to be counted
CONFIG_POLL = 2.0  # seconds between the server's looks at the config folder
IDLE = 10.0  # seconds the loaded server is watched with nothing asked of it
PROBE_S = 15.0  # seconds of /healthz probes on the loaded server
PROBE_GAP = 0.05  # seconds between two probes
STALL = 0.1  # a probe longer than this counts as one that waited for the event loop
SETTLE = 0.5  # seconds between two browser contexts
TARGET_MS = 1000.0  # overview first meaningful paint, every load
WAYS = ("kept", "fresh")  # the data alone: on one kept-alive connection, on a new one each

# Installed before any of the page's scripts: when the first element matching each selector is
# in the DOM (performance.now(), in the mutation's microtask), and the first task after the
# next animation frame, whose rendering paints it.
SEEN_SCRIPT = """
(() => {
  const wanted = {
    app_row: '[data-testid^="app-row-"]',
    grid_cell: '[data-testid^="cell-"]',
    host_row: '[data-testid^="host-row-"]',
    login_form: '[data-testid="login-name"]',
  };
  const seen = (window.__droverBench = {});
  const rows = document.getElementsByTagName("tr");
  window.__droverRowsMax = 0;
  const check = () => {
    window.__droverRowsMax = Math.max(window.__droverRowsMax, rows.length);
    for (const [key, selector] of Object.entries(wanted)) {
      if (key in seen || !document.querySelector(selector)) continue;
      seen[key] = performance.now();
      requestAnimationFrame(() => {
        const channel = new MessageChannel();
        channel.port1.onmessage = () => { seen[key + "_frame"] = performance.now(); };
        channel.port2.postMessage(0);
      });
    }
  };
  new MutationObserver(check).observe(document, { childList: true, subtree: true });
})();
"""

# What the page's Performance API says, ms from the navigation's start.
FIGURES_SCRIPT = """
([mark, api]) => {
  const nav = performance.getEntriesByType("navigation")[0];
  const fcp = performance.getEntriesByName("first-contentful-paint")[0];
  const resources = performance.getEntriesByType("resource");
  const script = resources.find((e) => /\\/assets\\/[^/]*\\.js$/.test(new URL(e.name).pathname));
  const call = api ? resources.find((e) => new URL(e.name).pathname.startsWith(api)) : undefined;
  const marked = mark ? performance.getEntriesByName(mark)[0] : undefined;
  return {
    mark_ms: marked ? marked.startTime : null,
    fcp_ms: fcp ? fcp.startTime : null,
    html_response_end_ms: nav.responseEnd,
    dom_content_loaded_ms: nav.domContentLoadedEventEnd,
    script_response_end_ms: script ? script.responseEnd : null,
    script_bytes: script ? script.encodedBodySize : null,
    script_url: script ? new URL(script.name).pathname : null,
    api_url: call ? call.name : null,
    api_start_ms: call ? call.startTime : null,
    api_response_end_ms: call ? call.responseEnd : null,
    api_ms: call ? call.responseEnd - call.startTime : null,
    api_bytes: call ? call.encodedBodySize : null,
    seen: window.__droverBench || {},
  };
}
"""


@dataclass(frozen=True)
class Options:
    hosts: int
    services: int
    runs: int
    api_samples: int
    out: Path

    @property
    def applications(self) -> int:
        return self.services // SERVICES_PER_APP


@dataclass
class Samples:
    """Every figure of every run, by name."""

    values: dict[str, list[float]] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)

    def add(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        for name, value in record.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                self.values.setdefault(name, []).append(float(value))

    def summary(self, name: str) -> Summary | None:
        found = self.values.get(name)
        return Summary.of(found) if found else None


# -- the browser ------------------------------------------------------------------------------


async def new_context(browser: Browser, base: str, state: Any = None) -> BrowserContext:
    context = await browser.new_context(base_url=base, viewport=VIEWPORT, storage_state=state)
    await context.add_init_script(SEEN_SCRIPT)
    return context


async def sign_in(context: BrowserContext, password: str) -> None:
    response = await context.request.post(
        "/api/v1/login", data={"name": USER, "password": password}
    )
    if not response.ok:
        raise RuntimeError(f"sign-in refused: {response.status} {await response.text()}")


async def load(page: Page, path: str, conditions: Sequence[str]) -> None:
    """Navigate to `path` and wait (bounded) until every JS condition holds."""
    await page.goto(path, wait_until="commit", timeout=PAGE_BOUND_MS)
    for condition in conditions:
        await page.wait_for_function(condition, timeout=PAGE_BOUND_MS)


def seen(key: str) -> str:
    return f"() => window.__droverBench && window.__droverBench.{key}_frame !== undefined"


# Functions, not expressions: the page's CSP forbids eval, which an expression would need.
FCP = "() => performance.getEntriesByName('first-contentful-paint').length > 0"
MARKED = f"() => performance.getEntriesByName('{READY_MARK}').length > 0"


async def figures(page: Page, mark: str | None, api: str | None, prefix: str) -> dict[str, Any]:
    raw: dict[str, Any] = await page.evaluate(FIGURES_SCRIPT, [mark, api])
    found = raw.pop("seen")
    record = {f"{prefix}_{name}": value for name, value in raw.items() if value is not None}
    record |= {f"{prefix}_seen_{name}_ms": value for name, value in found.items()}
    return record


async def overview_run(browser: Browser, base: str, password: str) -> tuple[dict[str, Any], Any]:
    """The overview cold, then warm in the same context; the context's cookies."""
    context = await new_context(browser, base)
    try:
        await sign_in(context, password)
        page = await context.new_page()
        await load(page, "/", [MARKED, FCP, seen("app_row")])
        record = await figures(page, READY_MARK, "/api/v1/overview", "overview_cold")
        await page.goto("about:blank")
        await load(page, "/", [MARKED, FCP, seen("app_row")])
        record |= await figures(page, READY_MARK, "/api/v1/overview", "overview_warm")
        return record, await context.storage_state()
    finally:
        await context.close()


@dataclass(frozen=True)
class PageSpec:
    prefix: str  # of its figures' names
    path: str
    seen: str  # what SEEN_SCRIPT waits for
    api: str | None  # the path of the API request that brings its data
    table: str | None  # the data-testid of its virtualized table
    signed_in: bool = True


PAGES = [
    PageSpec("app", f"/apps/{APP}", "grid_cell", f"/api/v1/applications/{APP}/grid", "grid"),
    PageSpec("hosts", "/hosts", "host_row", "/api/v1/hosts", "hosts-table"),
    PageSpec("login", "/login", "login_form", None, None, signed_in=False),
]
ROWS_SCRIPT = (
    "(id) => document.querySelectorAll(`[data-testid='${id}'] tbody tr:not(.spacer)`).length"
)
AFTER = 1.0  # seconds a page is left after its first paint, to count what it does next


async def page_run(browser: Browser, base: str, state: Any, spec: PageSpec) -> dict[str, Any]:
    """One page, cold, with `state`'s cookies (none: signed out), until `spec.seen` is painted;
    with a table, how many rows it holds then, the most <tr> the page held at once until AFTER
    later, and how many API requests it made by then."""
    context = await new_context(browser, base, state)
    try:
        page = await context.new_page()
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        await load(page, spec.path, [FCP, seen(spec.seen)])
        record = await figures(page, None, spec.api, spec.prefix)
        if spec.table is not None and spec.api is not None:
            record[f"{spec.prefix}_rows_in_dom"] = await page.evaluate(ROWS_SCRIPT, spec.table)
            await asyncio.sleep(AFTER)
            record[f"{spec.prefix}_rows_max"] = await page.evaluate("() => window.__droverRowsMax")
            calls = [url for url in requests if httpx.URL(url).path.startswith(spec.api)]
            record[f"{spec.prefix}_api_requests_after"] = len(calls)
        return record
    finally:
        await context.close()


async def browser_runs(browser: Browser, base: str, password: str, runs: int) -> Samples:
    samples = Samples()
    for index in range(runs):
        record: dict[str, Any] = {"run": index + 1}
        overview, state = await overview_run(browser, base, password)
        record |= overview
        await asyncio.sleep(SETTLE)
        for spec in PAGES:
            record |= await page_run(browser, base, state if spec.signed_in else None, spec)
            await asyncio.sleep(SETTLE)
        samples.add(record)
        mark = record.get("overview_cold_mark_ms", float("nan"))
        print(f"run {index + 1}/{runs}: overview ready at {mark:.0f} ms", file=sys.stderr)
    return samples


# -- the data alone ---------------------------------------------------------------------------


async def time_requests(
    http: httpx.AsyncClient, url: str, samples: int, server_pid: int
) -> dict[str, Any]:
    """`url` `samples` times, one after another, on one kept-alive connection (as a browser
    does) and on a new connection each (`fresh`): wall time each, body size, server CPU."""
    figures: dict[str, Any] = {"url": url}
    for way in WAYS:
        times = []
        ticks = cpu_ticks(server_pid)
        for _ in range(samples):
            started = time.perf_counter()
            if way == "kept":
                response = await http.get(url)
            else:
                response = await http.get(url, headers={"Connection": "close"})
            times.append(time.perf_counter() - started)
            response.raise_for_status()
            figures["bytes"] = len(response.content)
        spent = (cpu_ticks(server_pid) - ticks) / CLK_TCK
        figures[f"{way}_seconds"] = times
        figures[f"{way}_server_cpu_s_per_request"] = spent / samples
    return figures


async def stall_probe(base: str, seconds: float) -> list[tuple[float, float]]:
    """GET /healthz every PROBE_GAP for `seconds`, each on a new connection: (when, how long)
    of each, in seconds. The server's own time for it is about a millisecond: anything longer
    is time its event loop was busy with something else."""
    probes = []
    began = time.monotonic()
    async with httpx.AsyncClient(base_url=base, timeout=30) as probe:
        while time.monotonic() - began < seconds:
            sent = time.perf_counter()
            response = await probe.get("/healthz", headers={"Connection": "close"})
            probes.append((time.monotonic() - began, time.perf_counter() - sent))
            response.raise_for_status()
            await asyncio.sleep(PROBE_GAP)
    return probes


def stalls(probes: list[tuple[float, float]]) -> dict[str, Any]:
    long = [(at, took) for at, took in probes if took > STALL]
    starts = [at for at, _ in long]
    gaps = [b - a for a, b in itertools.pairwise(starts) if b - a > 1.0]
    return {
        "probes": len(probes),
        "summary_s": Summary.of([took for _, took in probes]).as_dict(),
        "over_stall": len(long),
        "longest_s": max(took for _, took in probes),
        "median_between_stalls_s": Summary.of(gaps).median if gaps else None,
    }


def path_of(url: str) -> str:
    parsed = httpx.URL(url)
    return parsed.raw_path.decode()


async def api_ceilings(
    http: httpx.AsyncClient, samples: Samples, n: int, server_pid: int
) -> dict[str, dict[str, Any]]:
    """The very requests the pages made (as the browser recorded them), and /healthz."""
    urls = {"healthz": "/healthz"}
    for name in ("overview_cold", "app", "hosts"):
        recorded = next(
            (r[f"{name}_api_url"] for r in samples.records if f"{name}_api_url" in r), None
        )
        if recorded is None:
            raise RuntimeError(f"the {name} page made no API request the browser recorded")
        urls[name.removesuffix("_cold")] = path_of(recorded)
    await http.get(urls["overview"])  # one untimed, as the browser's were not the first
    return {name: await time_requests(http, url, n, server_pid) for name, url in urls.items()}


# -- the run ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loaded:
    """How the fleet got into the server, and what the server holds then."""

    expected: Expected
    put_s: float  # the first KV write → the last one acknowledged
    hosts_s: float  # the first KV write → every host online in the overview
    counted_s: float  # the applications' files written → every placement counted
    idle: IdleFigures  # the server then, IDLE seconds with nothing asked of it


async def load_fleet(
    tmp: Path, bus: EmbeddedNats, server: Child, http: httpx.AsyncClient, opts: Options
) -> Loaded:
    """The hosts first, under a config that places nothing; then the applications' files."""

    async def overview() -> dict[str, Any]:
        response = await http.get("/api/v1/overview")
        response.raise_for_status()
        return dict(response.json())

    async def hosts_in() -> bool:
        hosts = (await overview())["hosts"]
        return bool(hosts["total"] == hosts["online"] == opts.hosts)

    began = time.monotonic()
    expected, put_s = await populate(bus, opts)
    await wait_until("every host online", hosts_in, LOAD_BOUND, [server], 1.0)
    hosts_s = time.monotonic() - began
    for name, text in application_files(opts).items():
        (tmp / "config" / name).write_text(text)
    written = time.monotonic()

    async def all_counted() -> bool:
        return counted(await overview(), opts, expected)

    await wait_until("every placement counted", all_counted, LOAD_BOUND, [server], 1.0)
    counted_s = time.monotonic() - written
    idle = (await sample_idle({"server": server.pid}, IDLE))["server"]
    return Loaded(expected, put_s, hosts_s, counted_s, idle)


async def run(opts: Options) -> dict[str, Any]:
    if not (BUNDLE / "index.html").is_file():
        raise SystemExit(f"the GUI is not built ({BUNDLE}/index.html): run `make gui` first")
    if shutil.which(CHROMIUM) is None:
        raise SystemExit(f"no Chromium at {CHROMIUM} (Debian package chromium)")
    password = secrets.token_urlsafe(18)
    async with contextlib.AsyncExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="drover-bench-gui-"))
        stack.callback(shutil.rmtree, tmp, True)
        (tmp / "config").mkdir()
        for name, text in fleet_files(opts).items():
            (tmp / "config" / name).write_text(text)
        drover = await start_drover(stack, tmp, poll=CONFIG_POLL)
        bus, server, http, base = drover.bus, drover.server, drover.http, drover.base
        password = drover.password
        loaded = await load_fleet(tmp, bus, server, http, opts)
        rss_loaded = rss_bytes(server.pid) / 1e6
        probes = await stall_probe(base, PROBE_S)

        playwright = await stack.enter_async_context(async_playwright())
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, chromium_sandbox=False
        )
        stack.push_async_callback(browser.close)
        chromium = browser.version
        samples = await browser_runs(browser, base, password, opts.runs)
        if not server.alive():
            raise RuntimeError(f"the server exited during the runs: {server.tail()}")
        api = await api_ceilings(http, samples, opts.api_samples, server.pid)
        nats_pid = bus.pid()
        memory = {
            "server_rss_loaded_mb": rss_loaded,
            "server_rss_after_mb": rss_bytes(server.pid) / 1e6,
            "nats_rss_mb": rss_bytes(nats_pid) / 1e6 if nats_pid else None,
        }
        return report(opts, chromium, loaded, probes, samples, api, memory)


# -- the report -------------------------------------------------------------------------------


def source() -> str:
    """The commit of the drover that ran, `-dirty` when its work tree had changes."""
    repo = Path(__file__).resolve().parents[1]
    try:
        described = subprocess.run(
            ["git", "-C", str(repo), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return described.stdout.strip()


def report(
    opts: Options,
    chromium: str,
    loaded: Loaded,
    probes: list[tuple[float, float]],
    samples: Samples,
    api: dict[str, dict[str, Any]],
    memory: dict[str, Any],
) -> dict[str, Any]:
    summaries = {name: Summary.of(values).as_dict() for name, values in samples.values.items()}
    summaries.pop("run", None)
    ceilings = {
        name: {k: v for k, v in figures.items() if not k.endswith("_seconds")}
        | {f"{way}_s": Summary.of(figures[f"{way}_seconds"]).as_dict() for way in WAYS}
        for name, figures in api.items()
    }
    return {
        "machine": machine() | {"chromium": chromium, "source": source()},
        "setup": {
            "hosts": opts.hosts,
            "services_per_host": opts.services,
            "applications": opts.applications,
            "placements": opts.hosts * opts.applications * SERVICES_PER_APP,
            "runs": opts.runs,
            "api_samples": opts.api_samples,
            "browser": "a new context (empty cache, own cookies) per page; 'warm': the "
            "overview loaded again in its context, the bundle cached",
            "viewport": VIEWPORT,
        },
        "target_ms": TARGET_MS,
        "fleet": {
            "expected": loaded.expected.__dict__,
            "put_s": loaded.put_s,
            "hosts_online_s": loaded.hosts_s,
            "applications_counted_s": loaded.counted_s,
            "server_idle": loaded.idle.as_dict(),
        },
        "memory": memory,
        "stalls": stalls(probes),
        "browser_ms": summaries,
        "api": ceilings,
        "samples": {
            "runs": samples.records,
            "healthz_probes_s": probes,
            "api_s": {k: {way: v[f"{way}_seconds"] for way in WAYS} for k, v in api.items()},
        },
    }


def _ms(summary: dict[str, Any] | None) -> str:
    if summary is None:
        return "—"
    return " / ".join(f"{summary[k]:.0f}" for k in ("median", "p90", "max"))


def _api_ms(summary: dict[str, Any]) -> str:
    return " / ".join(f"{summary[k] * 1000:.1f}" for k in ("median", "p90", "p99", "max"))


BROWSER_ROWS = [
    ("overview_cold_mark_ms", "overview, cold: `drover:overview-ready` (first meaningful paint)"),
    ("overview_cold_seen_app_row_frame_ms", "… first application row painted (next frame)"),
    ("overview_cold_fcp_ms", "… first-contentful-paint"),
    ("overview_cold_html_response_end_ms", "… HTML received"),
    ("overview_cold_script_response_end_ms", "… bundle script received"),
    ("overview_cold_dom_content_loaded_ms", "… DOMContentLoaded (bundle run, first render)"),
    ("overview_cold_api_start_ms", "… GET /api/v1/overview sent"),
    ("overview_cold_api_ms", "… GET /api/v1/overview, request → response end"),
    ("overview_warm_mark_ms", "overview, bundle cached: `drover:overview-ready`"),
    ("overview_warm_fcp_ms", "… first-contentful-paint"),
    ("overview_warm_api_ms", "… GET /api/v1/overview, request → response end"),
    ("app_seen_grid_cell_ms", f"`/apps/{APP}`, cold: first grid cell in the DOM"),
    ("app_seen_grid_cell_frame_ms", "… painted (next frame)"),
    ("app_fcp_ms", "… first-contentful-paint"),
    ("app_api_ms", "… GET …/grid (first page), request → response end"),
    ("app_rows_in_dom", "… grid rows in the DOM then (a count)"),
    ("app_rows_max", f"… most `<tr>` in the page at once, until {AFTER:.0f} s later (a count)"),
    ("app_api_requests_after", "… GET …/grid requests made by then (a count)"),
    ("hosts_seen_host_row_ms", "`/hosts`, cold: first host row in the DOM"),
    ("hosts_seen_host_row_frame_ms", "… painted (next frame)"),
    ("hosts_api_ms", "… GET /api/v1/hosts (first page), request → response end"),
    ("hosts_rows_in_dom", "… host rows in the DOM then (a count)"),
    ("hosts_rows_max", f"… most `<tr>` in the page at once, until {AFTER:.0f} s later (a count)"),
    ("hosts_api_requests_after", "… GET /api/v1/hosts requests made by then (a count)"),
    ("login_fcp_ms", "ceiling: `/login`, no session, cold: first-contentful-paint"),
    ("login_seen_login_form_frame_ms", "… sign-in form painted (next frame)"),
]


def markdown(result: dict[str, Any]) -> str:
    m, s, b = result["machine"], result["setup"], result["browser_ms"]
    rows = [
        f"| ms from navigation start, median / p90 / max (n={s['runs']}) | measured |",
        "|---|---|",
    ]
    rows += [f"| {label} | {_ms(b.get(name))} |" for name, label in BROWSER_ROWS]
    api = result["api"]
    rows += [
        "",
        f"| data alone (httpx, one after another, n={s['api_samples']}) | "
        "one kept-alive connection: ms median / p90 / p99 / max; server CPU | "
        "a new connection each: ms median / p90 / p99 / max; server CPU | bytes |",
    ]
    rows += ["|---|---|---|---|"]
    for figures in api.values():
        cells = [
            f"{_api_ms(figures[f'{way}_s'])}; "
            f"{figures[f'{way}_server_cpu_s_per_request'] * 1000:.1f} ms/request"
            for way in WAYS
        ]
        rows.append(f"| `GET {figures['url']}` | {' | '.join(cells)} | {figures['bytes']:,} |")
    fleet, mem, st = result["fleet"], result["memory"], result["stalls"]
    idle = fleet["server_idle"]
    marks = [r["overview_cold_mark_ms"] for r in result["samples"]["runs"]]
    ready = b["overview_cold_mark_ms"]
    over = sum(1 for v in marks if v > result["target_ms"])
    between = st["median_between_stalls_s"]
    scripts = {
        (r.get("overview_cold_script_url"), r.get("overview_cold_script_bytes"))
        for r in result["samples"]["runs"]
    }
    b_script = ", ".join(f"{url} ({size:,} bytes)" for url, size in sorted(scripts, key=str))
    notes = [
        f"{m['date']}, {m['cores']} cores ({m['cpu']}), Linux {m['kernel']}, Python "
        f"{m['python']}, Chromium {m['chromium']}, {m['nats_server']}, drover {m['drover']} "
        f"({m['source']}); GUI bundle {b_script}.",
        f"{s['hosts']:,} hosts × {s['services_per_host']} services ({s['placements']:,} "
        f"placements, {s['applications']} applications); {fleet['expected']}.",
        f"KV writes done in {fleet['put_s']:.1f} s; every host online in the overview "
        f"{fleet['hosts_online_s']:.1f} s after the first write; every placement counted "
        f"{fleet['applications_counted_s']:.1f} s after the applications' files were written.",
        f"Server with the fleet loaded, over {idle['seconds']:.0f} s with nothing asked of it: "
        f"{idle['cpu_percent_of_one_core']:.0f} % of one core.",
        f"GET /healthz every {PROBE_GAP * 1000:.0f} ms for {PROBE_S:.0f} s (n={st['probes']}): "
        f"median {st['summary_s']['median'] * 1000:.1f} ms; {st['over_stall']} over "
        f"{STALL * 1000:.0f} ms, the longest {st['longest_s'] * 1000:.0f} ms"
        + (f", one stall every {between:.1f} s." if between is not None else "."),
        f"Server RSS with the fleet loaded: {mem['server_rss_loaded_mb']:.0f} MB, after the "
        f"runs: {mem['server_rss_after_mb']:.0f} MB; nats-server: {mem['nats_rss_mb']:.0f} MB.",
        f"Target: overview first meaningful paint ≤ {result['target_ms']:.0f} ms: median "
        f"{ready['median']:.0f}, p90 {ready['p90']:.0f}, max {ready['max']:.0f} ms; "
        f"{over} of {len(marks)} loads over it.",
    ]
    return "\n".join(rows) + "\n\n" + "\n".join(f"- {n}" for n in notes)


# -- entry point ------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.gui_paint", description=__doc__)
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--services", type=int, default=20, help="per host (even)")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--api-samples", type=int, default=50, help="httpx samples per request")
    parser.add_argument(
        "--out", type=Path, default=Path(tempfile.gettempdir()) / "drover-bench" / "gui_paint.json"
    )
    args = parser.parse_args(argv)
    if args.services < SERVICES_PER_APP or args.services % SERVICES_PER_APP:
        parser.error(f"--services: a multiple of {SERVICES_PER_APP}")
    if args.hosts < 1 or args.runs < 1 or args.api_samples < 1:
        parser.error("--hosts, --runs and --api-samples: at least 1")
    return Options(args.hosts, args.services, args.runs, args.api_samples, args.out)


async def bounded(opts: Options) -> dict[str, Any]:
    """The whole run within a bound; SIGTERM cancels it, so everything is still cleaned up."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    async with asyncio.timeout(2 * LOAD_BOUND + 300 + opts.runs * 60):
        return await run(opts)


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    started = time.monotonic()
    try:
        result = asyncio.run(bounded(opts))
    except (asyncio.CancelledError, KeyboardInterrupt):
        print("interrupted; everything the bench started has been stopped", file=sys.stderr)
        return 130
    result["wall_s"] = time.monotonic() - started
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    print(f"\nend to end: {result['wall_s']:.0f} s; raw samples: {opts.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
