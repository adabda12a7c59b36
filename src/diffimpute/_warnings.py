"""Warnings that point at the user's line, not at the library's.

A fixed ``stacklevel`` is right for one call path only: the same fallback warning is raised from
``fit``, from ``fit_transform`` and from a grid search, at different depths. ``warn`` walks the
stack instead and blames the first frame outside this package, as Python 3.12's
``skip_file_prefixes`` does.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

_PACKAGE = str(Path(__file__).resolve().parent)


def _outside_package_level() -> int:
    """The ``stacklevel`` of the innermost caller outside this package (counted from ``warn``)."""
    frame, level = sys._getframe(2), 2
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` attributed to the user's code that called into the library."""
    warnings.warn(message, category, stacklevel=_outside_package_level())
