"""`drover outpost init` (on the hub's side: an outpost's bundle) and `drover outpost` (at the
remote site: the outpost itself)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from drover.cli import options
from drover.cli.client import CliError
from drover.cli.signals import run_until_signalled
from drover.ops import logging as drover_logging


def init(name: str, authority_dir: Path, out: Path, hub_ca: Path | None) -> None:
    from drover.bus.trust.authority import Authority, AuthorityError
    from drover.bus.trust.outposts import BundleError, make_bundle
    from drover.model.names import is_host_id

    if not is_host_id(name):
        raise CliError(
            f"outpost name {name!r}: expected letters, digits, '-' and '_' (it names subjects)", 2
        )
    if hub_ca is not None and not hub_ca.is_file():
        raise CliError(f"--hub-ca {hub_ca}: no such file", 2)
    try:
        authority = Authority.load(authority_dir)
        bundle = make_bundle(authority, name, out.resolve(), hub_ca)
    except (AuthorityError, BundleError, OSError) as err:
        raise CliError(str(err), 2) from None
    print(f"outpost {name}: bundle made in {bundle.directory} (secret: its .creds let a")
    print("leaf node onto the hub). Copy it to the outpost and run there:")
    print(f"  drover outpost --bundle {bundle.directory} --hub tls://HUB:7422 \\")
    print("    --tls-cert CERT --tls-key KEY --tls-ca CA")


def run(
    bundle: Path,
    hub: str,
    listen: str,
    data_dir: Path,
    certificate: tuple[Path, Path, Path],
    level: str,
    log_format: str,
) -> None:
    from drover.bus.trust.outposts import BundleError
    from drover.bus.trust.pki import ServerCertificate
    from drover.outpost.app import Outpost, OutpostSettings

    level = options.log_level(level)
    host, port = options.listen_address(listen)
    urls = tuple(url.strip() for url in hub.split(",") if url.strip())
    if not urls:
        raise CliError(
            "--hub: expected the hub's leaf node URL, e.g. tls://hub.example.com:7422", 2
        )
    cert, key, ca = certificate
    for flag, path in (("--tls-cert", cert), ("--tls-key", key), ("--tls-ca", ca)):
        if not path.is_file():
            raise CliError(f"{flag} {path}: no such file", 2)
    settings = OutpostSettings(
        bundle=bundle,
        hub=urls,
        data_dir=data_dir.resolve(),
        certificate=ServerCertificate(ca.resolve(), cert.resolve(), key.resolve()),
        listen_host=host,
        listen_port=port,
    )
    drover_logging.configure(level, log_format)
    try:
        outpost = Outpost(settings)
    except BundleError as err:
        raise CliError(f"--bundle: {err}", 2) from None
    asyncio.run(run_until_signalled(outpost.run))
