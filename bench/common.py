"""What the imputation benchmarks share: datasets as train windows and evaluation windows, masks, scores.

Every dataset comes as ``float32 (n_windows, 48, features)`` z-scored arrays with NaN for missing
(``datasets.py``). Training windows of the continuous series (ETTh1, Beijing) overlap by 3/4
(stride 12), the same windows for every method; evaluation windows do not overlap. PhysioNet's
windows are its patients' 48 hours.
"""

from __future__ import annotations

import numpy as np
from datasets import load_beijing_pm25, load_etth1, load_physionet2012

from diffimpute.masking.simulate import block, mcar
from diffimpute.metrics.imputation import summarize

WINDOW = 48
MASKS = {
    "mcar10": lambda x, rng: mcar(x, 0.1, rng),
    "mcar50": lambda x, rng: mcar(x, 0.5, rng),
    "mcar90": lambda x, rng: mcar(x, 0.9, rng),
    "block": lambda x, rng: block(x, 0.1, rng, block_len=12, block_width=3),
}


def _overlapping(frame_values: np.ndarray, mean: np.ndarray, std: np.ndarray, stride: int) -> np.ndarray:
    values = ((frame_values - mean) / std).astype(np.float32)
    starts = range(0, len(values) - WINDOW + 1, stride)
    return np.stack([values[s : s + WINDOW] for s in starts])


def load_split(name: str, seed: int = 0) -> dict[str, np.ndarray]:
    """``train`` (overlapping windows), ``val`` and ``test`` (non-overlapping) for one dataset."""
    if name == "physionet":
        data = load_physionet2012(seed=seed)
        return {"train": data["train"], "val": data["val"], "test": data["test"]}
    data = load_etth1(window=WINDOW) if name == "etth1" else load_beijing_pm25(window=WINDOW)
    raw = data["frames"]["train"][data["columns"]].to_numpy(dtype=np.float32)
    return {"train": _overlapping(raw, data["mean"], data["std"], WINDOW // 4), "val": data["val"], "test": data["test"]}


def subsample(array: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    if limit and len(array) > limit:
        return array[np.sort(rng.choice(len(array), limit, replace=False))]
    return array


def masked_inputs(truth: np.ndarray, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per mask name: (input with the hidden cells set to NaN, the hidden cells)."""
    rng = np.random.default_rng(seed)
    out = {}
    for mask_name, simulate in MASKS.items():
        hidden = simulate(truth, rng)
        out[mask_name] = (np.where(hidden, np.nan, truth).astype(np.float32), hidden)
    return out


def score(samples: np.ndarray, truth: np.ndarray, hidden: np.ndarray) -> dict[str, float]:
    """MAE of the median, normalised 19-quantile CRPS, exact sample CRPS and 90 % coverage."""
    result = summarize(samples.astype(np.float64), truth.astype(np.float64), hidden)
    return {"mae": result["mae"], "crps_q19": result["crps_quantile"], "crps": result["crps_sample"],
            "coverage90": result["coverage"] if samples.shape[0] > 1 else np.nan}
