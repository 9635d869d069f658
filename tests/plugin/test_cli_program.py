"""`patron program export / import`: a round trip through JSON, YAML and TOML files."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from loyalty.program import decode, encode
from loyalty.stores import StoreCreated
from plugin.cli import main


@pytest.fixture
def patron_env(monkeypatch: pytest.MonkeyPatch, database_url: str, server_urls: tuple[str, str]) -> None:
    """The CLI reads its configuration from the environment, like the server."""
    monkeypatch.setenv("PATRON_DATABASE_URL", database_url)
    monkeypatch.setenv("PATRON_REDIS_URL", server_urls[1])
    monkeypatch.setenv("PATRON_LOG_LEVEL", "WARNING")


async def patron(*argv: str) -> int:
    # The CLI runs its own event loop (asyncio.run), so it gets a thread of its own here.
    return await asyncio.to_thread(main, list(argv))


@pytest.mark.usefixtures("patron_env")
async def test_export_edit_import_round_trip(
    store: StoreCreated, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sid = store.store_id
    exported = tmp_path / "program.yaml"
    assert await patron("program", "export", "--store", sid, "--output", str(exported)) == 0
    program = decode(exported.read_bytes(), fmt="yaml")
    assert program.version == 1

    edited = msgspec.structs.replace(
        program, points=msgspec.structs.replace(program.points, per_currency_unit=3.0, expiry_days=90)
    )
    for version, fmt in enumerate(("toml", "json", "yaml"), start=2):
        path = tmp_path / f"edited.{fmt}"
        path.write_bytes(encode(edited, fmt=fmt))
        assert await patron("program", "import", "--store", sid, str(path)) == 0
        assert f"published version {version}" in capsys.readouterr().out

    assert await patron("program", "export", "--store", sid) == 0
    again = decode(capsys.readouterr().out.encode())
    assert again == msgspec.structs.replace(edited, version=4)

    assert await patron("program", "export", "--store", sid, "--format", "toml") == 0
    assert decode(capsys.readouterr().out.encode(), fmt="toml").version == 4


@pytest.mark.usefixtures("patron_env")
async def test_import_refuses_invalid_files_naming_the_field(
    store: StoreCreated, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"tiers": {"levels": [{"code": "a", "name": "A", "threshold": 5}]}}')
    assert await patron("program", "import", "--store", store.store_id, str(bad)) == 2
    assert "tiers.levels[0].threshold" in capsys.readouterr().err
    unknown = tmp_path / "program.txt"
    unknown.write_bytes(b"{}")
    assert await patron("program", "import", "--store", store.store_id, str(unknown)) == 2
    good = tmp_path / "good.json"
    good.write_bytes(b"{}")
    assert await patron("program", "import", "--store", "st_nope", str(good)) == 1
    assert "no store st_nope" in capsys.readouterr().err
