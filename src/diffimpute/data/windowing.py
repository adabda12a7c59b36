"""Cut long series into fixed-length windows and stitch per-window results back.

Panels are ``(series, time, features)``; windows are ``(n_windows, features, length)`` with an
index ``(n_windows, 2)`` of (series, start). Stitching gives every timestamp the value from the
window whose centre is nearest, so each timestamp is imputed with context on both sides where the
series allows it and window edges never show up as seams in the median.
"""

from __future__ import annotations

import numpy as np


def window_starts(n_time: int, window: int, stride: int, low: int = 0, high: int | None = None) -> np.ndarray:
    """Start offsets covering ``[0, n_time)``; the last window is shifted to end at the series end.

    With ``low`` / ``high``, only the starts in ``[low, high)`` of that same grid, computed without
    listing the others (a part of a very long series needs a few).
    """
    if window > n_time:
        raise ValueError(f"window ({window}) is longer than the series ({n_time} steps); pass window<={n_time}")
    last = n_time - window
    high = last + 1 if high is None else min(high, last + 1)
    starts = np.arange(-(-max(low, 0) // stride) * stride, high, stride)
    if last % stride and low <= last < high:
        starts = np.append(starts, last)
    return starts


def owners(times: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """For each of ``times``, the position in sorted ``starts`` of the window whose centre is
    nearest (ties go to the earlier window): the window a stitched timestamp is taken from."""
    centres = starts + (window - 1) / 2
    right = np.searchsorted(centres, times, side="left").clip(1, max(1, len(centres) - 1))
    left = right - 1
    if len(centres) == 1:
        return np.zeros(len(times), dtype=np.int64)
    return np.where(times - centres[left] <= centres[right] - times, left, right)


def owning_starts(first: int, stop: int, n_time: int, window: int, stride: int) -> np.ndarray:
    """Starts of the windows that ``stitch`` takes rows ``[first, stop)`` of a series of ``n_time``
    steps from, on the grid of ``window_starts``: all a part of a long series needs to be imputed
    exactly as the whole series is. They span rows ``[starts[0], starts[-1] + window)``."""
    # A timestamp's nearest centre is within half a window of it, so its window starts within a
    # window (plus a stride, for the shifted last window) of it.
    near = window_starts(n_time, window, stride, first - window - stride, stop + stride)
    return np.unique(near[owners(np.arange(first, stop), near, window)])


def make_windows(
    panel: np.ndarray, window: int, stride: int, starts: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Slice ``panel (series, time, features)`` into ``(n_windows, features, window)`` plus the index;
    ``starts`` (offsets into ``panel``) replaces the grid of ``window_starts``."""
    n_series, n_time, _ = panel.shape
    starts = window_starts(n_time, window, stride) if starts is None else starts
    index = np.stack(np.meshgrid(np.arange(n_series), starts, indexing="ij"), axis=-1).reshape(-1, 2)
    offsets = index[:, 1:2] + np.arange(window)  # (n_windows, window)
    windows = panel[index[:, :1], offsets]  # (n_windows, window, features)
    return np.ascontiguousarray(windows.transpose(0, 2, 1)), index


def stitch(windows: np.ndarray, index: np.ndarray, n_series: int, n_time: int, start: int = 0) -> np.ndarray:
    """Inverse of ``make_windows`` for results with leading axes.

    ``windows``: ``(..., n_windows, features, window)`` -> ``(..., n_series, n_time, features)``
    for times ``start .. start + n_time - 1`` (the index's coordinates), each from the window of
    the index whose centre is nearest.
    """
    window = windows.shape[-1]
    starts = np.unique(index[:, 1])
    times = np.arange(start, start + n_time)
    owner = owners(times, starts, window)  # (n_time,)
    start_of = starts[owner]
    n_starts = len(starts)
    window_id = index[:, 0] * n_starts + np.searchsorted(starts, index[:, 1])
    lookup = np.empty(n_series * n_starts, dtype=np.int64)
    lookup[window_id] = np.arange(len(index))
    rows = lookup[np.arange(n_series)[:, None] * n_starts + owner[None, :]]  # (n_series, n_time)
    cols = (times - start_of)[None, :].repeat(n_series, axis=0)
    # Advanced indices split by a slice land first: (n_series, n_time, ..., features).
    picked = windows[..., rows, :, cols]
    return np.moveaxis(picked, (0, 1), (-3, -2))
