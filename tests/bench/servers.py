"""ASGI servers under test, each a subprocess on a loopback port, ready once its `/health` says 200."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.bench.loadgen import build_request, fetch

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0

APPS = {
    "patron": "plugin.app:create_app",
    "baseline": "tests.bench.baseline_app:create_app",
}
"""The applications a benchmark compares, as factory import paths."""

Command = Callable[[str, int], list[str]]


def _granian(*options: str) -> Command:
    # As `patron serve` runs it (plugin/cli.py): ASGI, one worker, logging off.
    def command(factory: str, port: int) -> list[str]:
        return [
            *(sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--no-log", *options),
            *("--host", HOST, "--port", str(port), "--workers", "1", factory),
        ]

    return command


def _uvicorn(*options: str) -> Command:
    def command(factory: str, port: int) -> list[str]:
        return [
            *(sys.executable, "-m", "uvicorn", "--factory", factory, "--no-access-log", *options),
            *("--log-level", "warning", "--host", HOST, "--port", str(port), "--workers", "1"),
        ]

    return command


SERVERS: dict[str, Command] = {
    # The default event loop: uvloop when installed (the dev extras install it), else asyncio.
    "granian": _granian(),
    # uvloop and httptools when installed (uvicorn[standard]; the dev extras install both), else h11.
    "uvicorn": _uvicorn(),
    # Variants, to tell the server from the event loop and the HTTP parser apart.
    "granian-asyncio": _granian("--loop", "asyncio"),
    "uvicorn-h11": _uvicorn("--loop", "asyncio", "--http", "h11"),
}
"""ASGI servers by name: how to start one on a factory and a port."""
DEFAULT_SERVERS = ["granian", "uvicorn"]


@dataclass(frozen=True)
class RunningServer:
    name: str
    app: str
    port: int
    pid: int
    log: Path
    host: str = HOST


def process_tree_cpu(pid: int) -> float | None:
    """CPU seconds used so far by a process and its live descendants (Linux /proc); None elsewhere.

    Per request, this is the server's own cost, which other work on the machine shifts far less
    than it shifts throughput.
    """
    proc = Path("/proc")
    if not (proc / str(pid)).exists():
        return None
    children: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # Fields after the command name, which may hold spaces: state ppid ... utime(12) stime(13).
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        total += cpu.get(current, 0.0)
        pending += children.get(current, [])
    return total


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(urls: Mapping[str, str], *, admin_token: str) -> dict[str, str]:
    """The inherited environment less the caller's `PATRON_*`, plus exactly what a server under test needs."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("PATRON_")}
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        PATRON_DATABASE_URL=urls["database"],
        PATRON_REDIS_URL=urls["redis"],
        PATRON_ADMIN_TOKEN=admin_token,
        PATRON_WORKER="false",
        PATRON_LOG_LEVEL="WARNING",
        # Limits far above any load here: each request still pays for its check, none is refused.
        PATRON_RATE_LIMIT_PER_KEY=str(10**12),
        PATRON_RATE_LIMIT_PER_STORE=str(10**12),
        PATRON_RATE_LIMIT_WEBHOOKS_PER_STORE=str(10**12),
    )
    return env


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


async def _wait_healthy(process: asyncio.subprocess.Process, port: int, log: Path) -> None:
    request = build_request("GET", "/health", host=f"{HOST}:{port}")
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"the server exited with {process.returncode}:\n{_tail(log)}")
        with contextlib.suppress(OSError, TimeoutError):
            status, _ = await fetch(HOST, port, request, seconds=2.0)
            if status == 200:
                return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"no healthy answer on port {port} within {START_TIMEOUT:.0f}s:\n{_tail(log)}")


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()


@contextlib.asynccontextmanager
async def running_server(
    server: str, app: str, *, env: Mapping[str, str], log_dir: Path
) -> AsyncIterator[RunningServer]:
    """Start `app` (a key of APPS) under `server` (a key of SERVERS); stop it on exit.

    Its output goes to `log_dir/<server>-<app>.log`, whose tail is quoted if it fails to start.
    """
    port = free_port()
    log = log_dir / f"{server}-{app}.log"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            *SERVERS[server](APPS[app], port),
            cwd=ROOT,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=output,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        await _wait_healthy(process, port, log)
        yield RunningServer(name=server, app=app, port=port, pid=process.pid, log=log)
    finally:
        await _stop(process)
