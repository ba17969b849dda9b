"""The agent's secret backends and the masking of values in output (ops/secrets.py)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drover.ops import secrets
from drover.ops.secrets import MASK, Redactor, Secrets, SecretUnavailable


async def test_env_and_file_references_resolve_to_their_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOP_TOKEN", "t0ken")
    (tmp_path / "pw").write_text("line one\nline two\n")  # one trailing newline comes off
    (tmp_path / "raw").write_bytes(b"no newline")
    found = await Secrets().environment(
        {"A": "env:SHOP_TOKEN", "B": f"file:{tmp_path / 'pw'}", "C": f"file:{tmp_path / 'raw'}"}
    )
    assert found == {"A": "t0ken", "B": "line one\nline two", "C": "no newline"}


@pytest.mark.parametrize(
    ("make", "reference", "reason"),
    [
        (None, "env:DROVER_TEST_UNSET", "not set in the agent's environment"),
        (None, "file:{tmp}/absent", "no such file"),
        ("dir", "file:{tmp}/it", "a directory, not a file"),
        ("big", "file:{tmp}/it", "larger than 65536 bytes"),
        ("binary", "file:{tmp}/it", "not UTF-8 text"),
        ("nul", "file:{tmp}/it", "holds a NUL byte, which no environment variable can"),
        (None, "vault:kv/shop", "no secret backend 'vault' on this host (it has env, file)"),
        (None, "nonsense", "'nonsense' is not a secret reference"),
    ],
)
async def test_a_secret_that_cannot_be_had_says_which_for_what_and_why(
    tmp_path: Path, make: str | None, reference: str, reason: str
) -> None:
    it = tmp_path / "it"
    match make:
        case "dir":
            it.mkdir()
        case "big":
            it.write_bytes(b"x" * (secrets.MAX_FILE_BYTES + 1))
        case "binary":
            it.write_bytes(b"\xff\xfe")
        case "nul":
            it.write_bytes(b"a\x00b")
    reference = reference.format(tmp=tmp_path)
    with pytest.raises(SecretUnavailable) as caught:
        await Secrets().environment({"DB_PASSWORD": reference})
    assert str(caught.value).startswith(f"secret {reference} for DB_PASSWORD: {reason}")


class Slow:
    async def resolve(self, reference: str) -> str:
        await asyncio.sleep(60)
        return reference


class Broken:
    async def resolve(self, reference: str) -> str:
        raise ConnectionRefusedError(f"vault at 127.0.0.1:8200 refused ({reference})")


async def test_a_backend_that_fails_or_hangs_fails_the_secret_in_bounded_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(secrets, "RESOLVE_TIMEOUT", 0.2)
    backends = Secrets({"slow": Slow(), "broken": Broken()})
    with pytest.raises(SecretUnavailable, match="secret slow:x for K: its backend gave no answer"):
        await backends.resolve("K", "slow:x")
    with pytest.raises(
        SecretUnavailable, match=r"secret broken:kv/a for K: vault at 127.0.0.1:8200 refused"
    ):
        await backends.resolve("K", "broken:kv/a")


async def test_a_backend_installed_as_an_entry_point_resolves_its_scheme(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A package beside the agent, found as Python finds installed packages (its dist-info)."""
    (tmp_path / "shop_secrets.py").write_text(
        textwrap.dedent(
            """\
            class Reversed:
                async def resolve(self, reference):
                    return reference[::-1]

            class Broken:
                def __init__(self):
                    raise RuntimeError("no config")
            """
        )
    )
    info = tmp_path / "shop_secrets-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: shop-secrets\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[drover.secret_backends]\n"
        "reversed = shop_secrets:Reversed\n"
        "broken = shop_secrets:Broken\n"
        "file = shop_secrets:Reversed\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "shop_secrets", raising=False)
    found = Secrets.installed()
    assert found.schemes == ["env", "file", "reversed"]  # a broken one, and one built in, not
    assert await found.resolve("K", "reversed:drow") == "word"
    assert await found.resolve("K", f"file:{tmp_path / 'shop_secrets.py'}") != "yp.sterces_pohs"


async def test_a_value_too_short_to_mask_is_said_without_its_value(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SHORT", "abc")
    assert await Secrets().resolve("PIN", "env:SHORT") == "abc"
    assert "secret env:SHORT for PIN is shorter than 4 characters: not masked in output" in [
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
    ]
    assert "abc" not in caplog.text
    assert Redactor(["abc"]).feed(b"abc") == b"abc"


def _masked_whole(data: bytes, values: list[str]) -> bytes:
    """Left to right, the longest value at each place: masking the stream at once."""
    ordered = sorted({v.encode() for v in values}, key=len, reverse=True)
    out, at = bytearray(), 0
    while at < len(data):
        found = next((v for v in ordered if data.startswith(v, at)), None)
        out += MASK if found else data[at : at + 1]
        at += len(found) if found else 1
    return bytes(out)


VALUES = st.lists(
    st.text(alphabet="abcxy\n\u00e9", min_size=secrets.MIN_MASKED, max_size=12), max_size=3
)


@given(
    values=VALUES,
    pieces=st.lists(st.text(alphabet="abcxy\n\u00e9*", max_size=30), max_size=12),
    cuts=st.lists(st.integers(0, 400), max_size=10),
)
def test_masking_a_stream_in_any_pieces_hides_every_value_as_masking_it_whole_would(
    values: list[str], pieces: list[str], cuts: list[int]
) -> None:
    """Values are planted between the pieces, then the stream is cut anywhere — inside a value,
    inside a UTF-8 character — and fed piece by piece."""
    stream = "".join(p + (values[i % len(values)] if values else "") for i, p in enumerate(pieces))
    data = stream.encode()
    bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    redactor = Redactor(values)
    out = b"".join(redactor.feed(data[a:b]) for a, b in itertools.pairwise(bounds))
    out += redactor.flush()
    assert out == _masked_whole(data, values)
    for value in values:
        assert value.encode() not in out or MASK in value.encode()


def test_text_is_masked_whole_and_a_feeding_sink_passes_masked_pieces_on() -> None:
    redactor = Redactor(["s3cr3t", "s3cr3t-longer"])
    assert redactor.text("a s3cr3t-longer and s3cr3t.") == "a *** and ***."
    got: list[bytes] = []
    feed = redactor.feeding(got.append)
    for piece in (b"xx s3c", b"r3", b"t yy"):
        feed(piece)
    got.append(redactor.flush())
    assert b"".join(got) == b"xx *** yy"
