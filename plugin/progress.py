"""A one-line progress bar on stderr for long CLI commands (no dependency for so little)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

WIDTH = 24


class ProgressBar:
    """Redraws `label  42% |██████····| 123,456 lines · 1,000,000 rows · 5.2 s` in place.

    `position` and `total` (bytes, say) give the percentage when known. Only a terminal sees the
    redraws; a pipe or a log file gets the final line alone, from `close()`.
    """

    def __init__(
        self,
        label: str,
        *,
        total: int | None = None,
        position: Callable[[], int] | None = None,
        stream: TextIO | None = None,
        interval: float = 0.1,
    ) -> None:
        self.label = label
        self.total = total
        self.position = position
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.started = time.monotonic()
        self.drawn_at = 0.0
        self.text = ""
        self.live = self.stream.isatty()

    def __call__(self, lines: int, rows: int) -> None:
        """Report progress: lines read and rows loaded so far."""
        self.text = self._render(lines, rows)
        now = time.monotonic()
        if self.live and now - self.drawn_at >= self.interval:
            self.drawn_at = now
            self.stream.write("\r" + self.text)
            self.stream.flush()

    def close(self) -> None:
        """Leave the last state on its own line."""
        if self.text:
            self.stream.write(("\r" if self.live else "") + self.text + "\n")
            self.stream.flush()

    def _render(self, lines: int, rows: int) -> str:
        parts = [self.label]
        if self.total and self.position is not None:
            fraction = min(self.position() / self.total, 1.0)
            filled = round(fraction * WIDTH)
            parts.append(f"{fraction:4.0%} |{'█' * filled}{'·' * (WIDTH - filled)}|")
        elapsed = time.monotonic() - self.started
        parts.append(f"{lines:,} lines · {rows:,} rows · {elapsed:.1f} s")
        return "  ".join(parts)
