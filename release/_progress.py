"""Progress on stderr for long work (downloads, hashing), only when stderr is a TTY."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


class Progress:
    """Thread-safe byte counter that redraws one stderr line at most 10 times a second."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = self._stream.isatty()
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._last = 0.0

    def advance(self, n: int) -> None:
        if not self._enabled:
            return
        with self._lock:
            self.done += n
            now = time.monotonic()
            if now - self._last < 0.1 and self.done < self.total:
                return
            self._last = now
            rate = self.done / max(now - self._start, 1e-6) / 2**20
            pct = 100.0 * self.done / self.total if self.total else 100.0
            self._stream.write(
                f"\r{self.label}: {self.done / 2**20:8.1f}/{self.total / 2**20:.1f} MiB "
                f"{pct:5.1f}% {rate:7.1f} MiB/s"
            )
            self._stream.flush()

    def close(self) -> None:
        if self._enabled:
            self._stream.write("\n")
            self._stream.flush()


class NullProgress(Progress):
    def __init__(self) -> None:
        super().__init__("", 0)
        self._enabled = False
