"""The program document on the command line, and the care scan."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Literal, cast

from loyalty import programs
from loyalty.errors import PatronError
from loyalty.program import Program, decode, encode
from loyalty.repository import care_actions as care_repo
from plugin import care_jobs
from plugin.cli._common import _with_handled_errors
from plugin.runtime import Runtime
from plugin.settings import Settings

Format = Literal["json", "yaml", "toml"]


_FORMATS: dict[str, Format] = {".json": "json", ".yaml": "yaml", ".yml": "yaml", ".toml": "toml"}


def _format_of(path: str) -> Format | None:
    return _FORMATS.get(Path(path).suffix.lower())


def program_export(settings: Settings, args: argparse.Namespace) -> int:
    fmt = cast(Format, args.format or (args.output and _format_of(args.output)) or "json")
    exported: list[Program] = []

    async def body(runtime: Runtime) -> int:
        async with runtime.pool.acquire() as conn:
            exported.append(await programs.live_program(conn, store_id=args.store))
        return 0

    status = _with_handled_errors("program export", settings, body)
    if status:
        return status
    program = exported[0]
    document = encode(program, fmt=fmt)
    if args.output:
        Path(args.output).write_bytes(document)
        print(f"wrote version {program.version} of {args.store}'s program to {args.output}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(document if document.endswith(b"\n") else document + b"\n")
        sys.stdout.flush()
    return 0


def program_import(settings: Settings, args: argparse.Namespace) -> int:
    fmt = _format_of(args.file)
    if fmt is None:
        print(
            f"patron program import: name the file .json, .yaml, .yml or .toml: {args.file}", file=sys.stderr
        )
        return 2
    try:
        program = decode(Path(args.file).read_bytes(), fmt=fmt)
    except OSError as exc:
        print(f"patron program import: {exc}", file=sys.stderr)
        return 2
    except PatronError as exc:
        print(f"patron program import: {exc.extra.get('field', 'program')}: {exc.detail}", file=sys.stderr)
        return 2

    async def body(runtime: Runtime) -> int:
        # The same publish as PUT /v1/program, based on the version live now.
        async with runtime.pool.acquire() as conn, conn.transaction():
            current = await programs.live_version(conn, store_id=args.store)
            published = await programs.publish(
                conn,
                store_id=args.store,
                program=program,
                expected_version=current,
                actor="cli",
                now=runtime.clock(),
            )
        print(f"published version {published.version} of {args.store}'s program (was {current})")
        return 0

    return _with_handled_errors("program import", settings, body)


def care_run(settings: Settings, args: argparse.Namespace) -> int:
    """One care scan per store (or of `--store`), as of `--now` (default: the clock)."""

    async def body(runtime: Runtime) -> int:
        if args.now is not None:
            runtime = dataclasses.replace(runtime, clock=lambda: args.now)
        if args.store:
            store_ids = [args.store]
        else:
            async with runtime.pool.acquire() as conn:
                store_ids = [store_id for store_id, _ in await care_repo.stores(conn)]
        for store_id in store_ids:
            result = await care_jobs.scan_store(runtime, store_id=store_id)
            issued = ", ".join(f"{c.trigger} {c.actions}" for c in result.actions) or "no actions"
            cost = sum(c.cost for c in result.actions)
            print(
                f"{store_id} as of {result.now.isoformat()}: {issued}; gift cost {cost}; "
                f"deferred emitted {result.emitted_due}; attributed {result.attributed}"
            )
        return 0

    return _with_handled_errors("care run", settings, body)
