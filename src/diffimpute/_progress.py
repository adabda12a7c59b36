"""Progress that suits where it is shown: a bar on a terminal, one log line per stage elsewhere.

On a non-terminal stream (CI logs, ``nohup``, a file) a tqdm bar writes a record at every refresh;
there ``progress`` logs one summary line when the stage ends instead, through the ``diffimpute``
logger (the CLI shows INFO records; a library user sees them after ``logging.basicConfig``).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator

from tqdm.auto import tqdm

logger = logging.getLogger("diffimpute")


class _LoggedStage:
    """The part of tqdm's interface the library uses, logging one line at ``close``."""

    def __init__(self, iterable: Iterable | None, total: int | None, desc: str, unit: str) -> None:
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n, self.postfix, self.started, self.closed = 0, {}, time.perf_counter(), False

    def __iter__(self) -> Iterator:
        for item in self.iterable:
            self.n += 1  # counted when started: a loop that breaks out still counts its last item
            yield item

    def __enter__(self) -> _LoggedStage:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, **values) -> None:
        self.postfix = values

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        extra = "".join(f", {key} {value}" for key, value in self.postfix.items())
        logger.info("%s: %d %s in %.1f s%s", self.desc, self.n, self.unit, time.perf_counter() - self.started, extra)


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str, unit: str = "it",
             enabled: bool = True, leave: bool = False):
    """A tqdm bar when ``enabled`` and stderr is a terminal, a one-line log record when enabled
    elsewhere, nothing when not enabled. Use it as tqdm: iterate, ``update``, ``set_postfix``, ``close``."""
    if enabled and not sys.stderr.isatty():
        return _LoggedStage(iterable, total, desc, unit)
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not enabled, leave=leave)
