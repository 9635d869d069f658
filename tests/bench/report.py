"""Turning load runs into figures: medians per target, paired ratios, a table for the terminal."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable

import msgspec

from tests.bench.loadgen import LoadResult


class Measurement(msgspec.Struct, kw_only=True):
    """One load run of one target (scenario, server, app) in one round."""

    scenario: str
    server: str
    app: str
    round: int
    result: LoadResult
    server_cpu_us: float | None = None
    """CPU the server's processes used per measured request, in microseconds (Linux only)."""


class Summary(msgspec.Struct, kw_only=True):
    """A target's figures over all rounds: medians, with the spread of throughput."""

    scenario: str
    server: str
    app: str
    rounds: int
    throughput: float
    throughput_min: float
    throughput_max: float
    p50_ms: float
    p99_ms: float
    errors: int
    client_cpu: float
    server_cpu_us: float | None


class Ratio(msgspec.Struct, kw_only=True):
    """`numerator` / `denominator` throughput: the median over rounds of the ratio within each round.

    Pairing by round keeps drift of the machine (other work, thermal) out of the ratio: both sides
    of a pair ran back to back.
    """

    scenario: str
    label: str
    numerator: str
    denominator: str
    ratio: float
    per_round: list[float]
    target: float | None = None

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.ratio >= self.target


def _median(values: Iterable[float]) -> float:
    return round(statistics.median(values), 3)


def summarize(measurements: list[Measurement]) -> list[Summary]:
    groups: dict[tuple[str, str, str], list[Measurement]] = defaultdict(list)
    for m in measurements:
        groups[m.scenario, m.server, m.app].append(m)
    summaries = []
    for (scenario, server, app), runs in groups.items():
        results = [m.result for m in runs]
        server_cpu = [m.server_cpu_us for m in runs if m.server_cpu_us is not None]
        summaries.append(
            Summary(
                scenario=scenario,
                server=server,
                app=app,
                rounds=len(runs),
                throughput=round(statistics.median(r.throughput for r in results), 1),
                throughput_min=min(r.throughput for r in results),
                throughput_max=max(r.throughput for r in results),
                p50_ms=_median(r.p50_ms for r in results),
                p99_ms=_median(r.p99_ms for r in results),
                errors=sum(r.errors for r in results),
                client_cpu=_median(r.client_cpu for r in results),
                server_cpu_us=_median(server_cpu) if server_cpu else None,
            )
        )
    return summaries


def paired_ratio(
    measurements: list[Measurement],
    *,
    scenario: str,
    label: str,
    numerator: tuple[str, str],
    denominator: tuple[str, str],
    target: float | None = None,
) -> Ratio | None:
    """The ratio of two (server, app) targets of a scenario; None if either did not run."""
    by_round: dict[int, dict[tuple[str, str], float]] = defaultdict(dict)
    for m in measurements:
        if m.scenario == scenario:
            by_round[m.round][m.server, m.app] = m.result.throughput
    per_round = [
        round(side[numerator] / side[denominator], 3)
        for _, side in sorted(by_round.items())
        if numerator in side and side.get(denominator)
    ]
    if not per_round:
        return None
    return Ratio(
        scenario=scenario,
        label=label,
        numerator="/".join(numerator),
        denominator="/".join(denominator),
        ratio=_median(per_round),
        per_round=per_round,
        target=target,
    )


def render_table(summaries: list[Summary], ratios: list[Ratio]) -> str:
    scenario_width = max([len("scenario"), *(len(s.scenario) for s in summaries)]) + 2
    server_width = max([len("server"), *(len(s.server) for s in summaries)]) + 2
    header = f"{'scenario':<{scenario_width}}{'server':<{server_width}}{'app':<10}{'req/s':>8}{'min-max':>13}"
    header += f"{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'client cpu':>12}{'server us/req':>15}"
    lines = [header, "-" * len(header)]
    for s in summaries:
        spread = f"{s.throughput_min:.0f}-{s.throughput_max:.0f}"
        server_cpu = "-" if s.server_cpu_us is None else f"{s.server_cpu_us:.0f}"
        lines.append(
            f"{s.scenario:<{scenario_width}}{s.server:<{server_width}}{s.app:<10}{s.throughput:>8.0f}"
            f"{spread:>13}{s.p50_ms:>9.2f}{s.p99_ms:>9.2f}{s.errors:>8}{s.client_cpu:>12.2f}{server_cpu:>15}"
        )
    lines.append("")
    label_width = max([0, *(len(r.label) for r in ratios)]) + 2
    for r in ratios:
        verdict = "" if r.met is None else f"  (target >= {r.target}: {'met' if r.met else 'NOT MET'})"
        rounds = ", ".join(f"{value:.2f}" for value in r.per_round)
        lines.append(f"{r.scenario:<{scenario_width}}{r.label:<{label_width}}{r.ratio:>6.2f}")
        lines[-1] += f"  per round [{rounds}]{verdict}"
    return "\n".join(lines)
