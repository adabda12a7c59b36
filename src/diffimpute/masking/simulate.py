"""Simulated missingness for evaluation: choose observed entries to hide.

Every mechanism takes user data ``X`` of shape ``(time, features)`` or a panel
``(series, time, features)`` with NaN marking missing entries, a target ``rate`` and an
explicit ``numpy.random.Generator``, and returns a boolean ``hide`` mask of the same shape.
``hide`` is True only on entries that are observed in ``X``; the caller blanks them, imputes,
and scores the imputation on ``hide``. ``rate`` is always a fraction of the *observed*
entries, so ``"mcar:0.2"`` and ``"block:0.2"`` hide comparable amounts of data.

Mechanisms:

- ``mcar``: uniformly random entries (missing completely at random).
- ``mar``: a logistic model on a few always-observed driver features decides which entries
  of the other features go missing (missing at random, after Muzellec et al. / PyGrinder's
  ``mar_logistic``).
- ``mnar``: each entry's own standardised value drives its chance of going missing, larger
  values more likely (self-masking, missing not at random).
- ``block``: contiguous ``time x feature`` rectangles (sensor outages hitting neighbours).
- ``sequence``: contiguous runs in time within one feature (a single sensor dropping out).
- ``gaps``: runs within one feature whose lengths are drawn from that feature's own real gaps
  (pooled over features where it has none), so a quality score is measured on gaps like the ones
  the data really has, not only on scattered cells.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

import numpy as np

from diffimpute._validation import check_positive_int, check_probability

MaskKind = Literal["mcar", "mar", "mnar", "block", "sequence", "gaps"]
MaskFunction = Callable[[np.ndarray, np.random.Generator], np.ndarray]

# Bisection on logistic intercepts: the bracket covers sigmoid values from ~1e-22 to
# 1 - 1e-22 for unit-variance logits, and 60 halvings reach float64 resolution.
_INTERCEPT_BRACKET = 50.0
_BISECTION_STEPS = 60


# ---------------------------------------------------------------------------- helpers


def _check_inputs(X: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Validate the shared arguments and return the observed mask of ``X``."""
    if not isinstance(X, np.ndarray):
        raise TypeError(f"X must be a numpy array, got {type(X).__name__}")
    if X.ndim not in (2, 3):
        raise ValueError(
            f"X must have shape (time, features) or (series, time, features); got shape {X.shape}"
        )
    if not np.issubdtype(X.dtype, np.number):
        raise TypeError(f"X must be numeric with NaN for missing entries, got dtype {X.dtype}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator (e.g. np.random.default_rng(0)), "
            f"got {type(rng).__name__}"
        )
    check_probability(rate, "rate")
    observed = ~np.isnan(X)
    if not observed.any():
        raise ValueError("X has no observed entries to hide")
    return observed


def _as_panel(a: np.ndarray) -> np.ndarray:
    """View ``(time, features)`` as a one-series panel ``(1, time, features)``."""
    return a[None] if a.ndim == 2 else a


def _standardise(X: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Per-feature z-scores over observed entries; missing entries become 0 (the mean).

    Works on ``(rows, features)``. Constant features get scale 1 so they stay at 0.
    """
    count = observed.sum(axis=0)
    total = np.where(observed, X, 0.0).sum(axis=0)
    mean = np.divide(total, count, out=np.zeros(X.shape[1]), where=count > 0)
    centred = np.where(observed, X - mean, 0.0)
    var = np.divide((centred**2).sum(axis=0), count, out=np.zeros(X.shape[1]), where=count > 0)
    scale = np.where(var > 0, np.sqrt(var), 1.0)
    return centred / scale


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _fit_intercepts(logits: np.ndarray, counted: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """Intercept per column so the mean of ``sigmoid(logits + b)`` over counted rows is ``rates``.

    ``logits`` and ``counted`` are ``(rows, columns)``; ``rates`` is ``(columns,)``. Vectorised
    bisection: the mean probability is monotone in the intercept.
    """
    n = np.maximum(counted.sum(axis=0), 1)
    low = np.full(logits.shape[1], -_INTERCEPT_BRACKET)
    high = np.full(logits.shape[1], _INTERCEPT_BRACKET)
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (low + high)
        mean_p = (_sigmoid(logits + mid) * counted).sum(axis=0) / n
        too_high = mean_p > rates
        high = np.where(too_high, mid, high)
        low = np.where(too_high, low, mid)
    return 0.5 * (low + high)


def _logistic_hide(
    logits: np.ndarray, observed: np.ndarray, rates: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Bernoulli draws with probabilities calibrated so each column hides ~``rates`` of its
    observed rows; ``(rows, columns)`` in and out."""
    p = _sigmoid(logits + _fit_intercepts(logits, observed, rates))
    return observed & (rng.random(logits.shape) < p)


def _paint_rectangles(
    hide: np.ndarray,
    observed: np.ndarray,
    target: int,
    length: int,
    width: int,
    rng: np.random.Generator,
) -> bool:
    """Place a batch of rectangles one after another into ``hide`` (in place); return True
    once the hidden count is as close to ``target`` as whole rectangles allow.

    Vectorised sequential placement: every entry records the first rectangle of the batch
    covering it, so each rectangle's newly hidden entries are those it covers first.
    """
    n_series, n_time, n_features = observed.shape
    hidden = int(hide.sum())
    area = length * width
    n_rects = 2 * -(-(target - hidden) // area) + 8
    series = rng.integers(0, n_series, n_rects)
    t0 = rng.integers(0, n_time - length + 1, n_rects)
    f0 = rng.integers(0, n_features - width + 1, n_rects)
    dt, df = np.meshgrid(np.arange(length), np.arange(width), indexing="ij")
    cells = np.ravel_multi_index(
        (
            np.broadcast_to(series[:, None, None], (n_rects, length, width)),
            t0[:, None, None] + dt,
            f0[:, None, None] + df,
        ),
        observed.shape,
    ).reshape(-1)
    first = np.full(observed.size, n_rects)
    np.minimum.at(first, cells, np.repeat(np.arange(n_rects), area))
    first = first.reshape(observed.shape)

    fresh = observed & ~hide & (first < n_rects)
    counts = hidden + np.cumsum(np.bincount(first[fresh], minlength=n_rects))
    if counts[-1] < target:
        hide |= fresh
        return False
    stop = int(np.argmax(counts >= target))
    before = counts[stop - 1] if stop > 0 else hidden
    if target - before < counts[stop] - target:
        stop -= 1  # overshooting would land further from the target than stopping short
    hide |= fresh & (first <= stop)
    return True


# ------------------------------------------------------------------------- mechanisms


def mcar(X: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Hide exactly ``round(rate * n_observed)`` observed entries chosen uniformly at random.

    The exact count (rather than independent coin flips) keeps small evaluation sets at the
    requested rate.
    """
    observed = _check_inputs(X, rate, rng)
    flat = np.flatnonzero(observed)
    chosen = rng.choice(flat, size=round(rate * flat.size), replace=False)
    hide = np.zeros(X.shape, dtype=bool)
    hide.flat[chosen] = True
    return hide


def mar(
    X: np.ndarray, rate: float, rng: np.random.Generator, obs_fraction: float = 0.3
) -> np.ndarray:
    """Hide entries of some features depending on the values of other, never-hidden features.

    A random ``floor(obs_fraction * features)`` of the features (at least one, at most
    ``features - 1``) are drivers and are never hidden. For every other feature, a logistic
    model with random weights on the drivers' standardised values at the same time step gives
    each entry its chance of being hidden; the intercepts are calibrated so that, in
    expectation, ``rate`` of *all* observed entries of ``X`` are hidden (so the rate among the
    non-driver features is higher, ``rate * n_observed / n_observed_non_driver``). Missing
    driver values count as their feature mean. Needs at least two features; raises
    ValueError when the non-driver features cannot absorb ``rate`` of the observed entries.
    """
    observed = _check_inputs(X, rate, rng)
    check_probability(obs_fraction, "obs_fraction")
    n_features = X.shape[-1]
    if n_features < 2:
        raise ValueError("mar needs at least two features: one to drive, one to hide")
    n_drivers = min(max(int(obs_fraction * n_features), 1), n_features - 1)
    order = rng.permutation(n_features)
    drivers, hidden = np.sort(order[:n_drivers]), np.sort(order[n_drivers:])

    rows = X.reshape(-1, n_features)
    rows_observed = observed.reshape(-1, n_features)
    affected_observed = rows_observed[:, hidden]
    affected_rate = rate * rows_observed.sum() / max(affected_observed.sum(), 1)
    if affected_rate >= 1.0:
        raise ValueError(
            f"mar cannot hide {rate} of the observed entries using only the "
            f"{len(hidden)} non-driver features; lower rate or obs_fraction"
        )

    z = _standardise(rows[:, drivers], rows_observed[:, drivers])
    weights = rng.standard_normal((n_drivers, len(hidden)))
    logits = z @ weights
    # Unit-variance logits keep the model equally informative whatever the number of drivers.
    spread = logits.std(axis=0)
    logits = logits / np.where(spread > 0, spread, 1.0)
    rates = np.full(len(hidden), affected_rate)

    hide = np.zeros(rows.shape, dtype=bool)
    hide[:, hidden] = _logistic_hide(logits, affected_observed, rates, rng)
    return hide.reshape(X.shape)


def mnar(X: np.ndarray, rate: float, rng: np.random.Generator, strength: float = 2.0) -> np.ndarray:
    """Self-masking: larger values of a feature are more likely to be hidden.

    Each entry is hidden with probability ``sigmoid(strength * z + b_f)`` where ``z`` is its
    value standardised within its feature and ``b_f`` is calibrated per feature so that, in
    expectation, ``rate`` of every feature's observed entries are hidden. ``strength`` sets
    how strongly the value drives missingness (0 gives MCAR).
    """
    observed = _check_inputs(X, rate, rng)
    if strength < 0:
        raise ValueError(f"strength must be >= 0, got {strength!r}")
    n_features = X.shape[-1]
    rows = X.reshape(-1, n_features)
    rows_observed = observed.reshape(-1, n_features)
    logits = strength * _standardise(rows, rows_observed)
    rates = np.full(n_features, float(rate))
    return _logistic_hide(logits, rows_observed, rates, rng).reshape(X.shape)


def block(
    X: np.ndarray,
    rate: float,
    rng: np.random.Generator,
    block_len: int = 10,
    block_width: int = 3,
) -> np.ndarray:
    """Hide ``block_len x block_width`` rectangles of consecutive time steps and features.

    Rectangles are placed uniformly at random (whole, never clipped at the edges) in
    random series, one after another, until the number of hidden observed entries is as
    close as possible to ``rate * n_observed``; overlaps are allowed and only their new
    entries count. The result is thus a union of whole rectangles, restricted to observed
    entries. ``block_len`` and ``block_width`` are capped at the number of time steps and
    features.
    """
    observed = _check_inputs(X, rate, rng)
    panel_observed = _as_panel(observed)
    _, n_time, n_features = panel_observed.shape
    length = min(check_positive_int(block_len, "block_len"), n_time)
    width = min(check_positive_int(block_width, "block_width"), n_features)
    hide = np.zeros(panel_observed.shape, dtype=bool)
    target = round(rate * panel_observed.sum())
    while target > 0 and not _paint_rectangles(hide, panel_observed, target, length, width, rng):
        pass
    return hide.reshape(X.shape)


def sequence(X: np.ndarray, rate: float, rng: np.random.Generator, seq_len: int = 10) -> np.ndarray:
    """Hide runs of ``seq_len`` consecutive time steps within single features.

    A ``block`` of width one: same placement and rate rules. ``seq_len`` is capped at the
    number of time steps.
    """
    seq_len = check_positive_int(seq_len, "seq_len")
    return block(X, rate, rng, block_len=seq_len, block_width=1)


def gap_lengths(missing: np.ndarray) -> np.ndarray:
    """Lengths of the runs of True in a 1-D boolean array."""
    padded = np.concatenate([[False], missing, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return edges[1::2] - edges[::2]


def gaps(X: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Hide runs within single features, each as long as a real gap of that feature.

    Features are picked uniformly, so every feature gets held-out cells; a run's length is drawn
    from the feature's own gap lengths (from all features' gaps if it has none, single cells if
    the data has no gap at all) and placed at a uniform start in a random series, until
    ``rate * n_observed`` observed entries are hidden.
    """
    observed = _check_inputs(X, rate, rng)
    panel = _as_panel(observed)
    n_series, n_time, n_features = panel.shape
    own = [np.concatenate([gap_lengths(~panel[s, :, f]) for s in range(n_series)]) for f in range(n_features)]
    pooled = np.concatenate(own)
    pooled = pooled if len(pooled) else np.ones(1, dtype=np.int64)
    hide = np.zeros(panel.shape, dtype=bool)
    target, hidden = round(rate * panel.sum()), 0
    for _ in range(100 * target + 1000):  # bounded: a full feature can take no more cells
        if hidden >= target:
            break
        f, s = rng.integers(n_features), rng.integers(n_series)
        length = int(min(rng.choice(own[f] if len(own[f]) else pooled), n_time))
        start = rng.integers(0, n_time - length + 1)
        fresh = panel[s, start : start + length, f] & ~hide[s, start : start + length, f]
        hide[s, start : start + length, f] |= fresh
        hidden += int(fresh.sum())
    return hide.reshape(X.shape)


# ------------------------------------------------------------------------- public API

_MECHANISMS: dict[str, Callable[[np.ndarray, float, np.random.Generator], np.ndarray]] = {
    "mcar": mcar,
    "mar": mar,
    "mnar": mnar,
    "block": block,
    "sequence": sequence,
    "gaps": gaps,
}


def parse_mask_spec(spec: str) -> MaskFunction:
    """Turn a ``"kind:rate"`` string such as ``"block:0.2"`` into ``hide = f(X, rng)``.

    Lets configuration files and the command line name an evaluation mask; each kind uses
    its default shape parameters.
    """
    valid = ", ".join(get_args(MaskKind))
    usage = f"expected 'kind:rate' with kind one of {valid} and 0 < rate < 1, e.g. 'mcar:0.1'"
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise ValueError(f"invalid mask spec {spec!r}; {usage}")
    kind, rate_text = (part.strip() for part in spec.split(":"))
    if kind not in _MECHANISMS:
        raise ValueError(f"unknown mask kind {kind!r} in {spec!r}; {usage}")
    try:
        rate = float(rate_text)
    except ValueError:
        raise ValueError(f"rate {rate_text!r} in {spec!r} is not a number; {usage}") from None
    if not 0.0 < rate < 1.0:
        raise ValueError(f"rate {rate} in {spec!r} is outside (0, 1); {usage}")
    mechanism = _MECHANISMS[kind]

    def simulate(X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return mechanism(X, rate, rng)

    simulate.__name__ = f"{kind}_{rate}"
    simulate.__doc__ = f"Hide ~{rate} of the observed entries of X with the {kind} mechanism."
    return simulate
