"""Progress bars on stderr for long work (downloads, hashing, pushes), only when stderr is
a TTY: a tqdm bar in bytes (KB/MB/GB scaling and bytes/s); nothing at all otherwise."""

from __future__ import annotations

import os
import sys
import threading
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from tqdm import tqdm


class Progress:
    """Thread-safe byte counter drawn as one tqdm bar on `stream` (default stderr), which
    tqdm redraws at most 10 times a second; disabled when `stream` is not a TTY."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = _isatty(self._stream)
        self._lock = threading.Lock()
        self._bar: tqdm[None] | None = None
        if self._enabled:
            from tqdm import tqdm  # only when a bar is drawn

            cols, rows = _size(self._stream)
            self._bar = tqdm(
                desc=label,
                total=total or None,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=self._stream,
                mininterval=0.1,
                ncols=cols,
                nrows=rows,
                leave=True,
            )

    def advance(self, n: int) -> None:
        with self._lock:
            self.done += n
            if self._bar is not None:
                self._bar.update(n)

    def close(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class NullProgress(Progress):
    """Counts nothing and draws nothing (progress=False)."""

    def __init__(self) -> None:
        self.label = ""
        self.total = 0
        self.done = 0
        self._enabled = False
        self._lock = threading.Lock()
        self._bar = None

    def advance(self, n: int) -> None:
        return


def _size(stream: TextIO) -> tuple[int, int]:
    """The terminal's (columns, rows); 80 x 24 where it reports none (a fresh pty, a
    `docker run -t` console: 0 x 0, where tqdm would hide its bar)."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return 80, 24
    return size.columns or 80, size.lines or 24


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a real stream
        return False
