"""The ImDiffusion detector vs simple baselines on SKAB, NAB realKnownCause and a synthetic suite.

Run (one process per core; each call writes ``results/anomaly_<tag>.json``)::

    OMP_NUM_THREADS=1 python bench/bench_anomaly.py --dataset skab --split tune --configs default --tag t1
    OMP_NUM_THREADS=1 python bench/bench_anomaly.py --dataset skab --split report --seeds 0 1 2 --tag r-skab
    OMP_NUM_THREADS=1 python bench/bench_anomaly.py --dataset synthetic --split tune --configs --tag t-syn
    python bench/bench_anomaly.py --report r-skab r-nab      # merge saved runs into one table

``--configs`` with no name runs the baselines alone.

Protocol
- Settings are chosen on the ``tune`` split and reported on the ``report`` split, never on both.
  SKAB: the first half of the runs of each folder (valve1, valve2, other) is ``tune``, the second
  half ``report``. NAB realKnownCause: each series trains on its first 30 %; the rest is cut in
  two halves in time, the earlier one ``tune`` and the later one ``report``. The synthetic suite
  (``anomaly_suite.py``) draws its series from disjoint seeds per split and is reported per kind
  of anomaly, with the mean over kinds.
- SKAB trains on ``anomaly-free/anomaly-free.csv``. Every method (detector and baselines) fits on
  the first 80 % of its training rows and fixes its label-free threshold on the last 20 % (the
  detector's ``calibration_fraction=0.2``): the baselines' threshold is the 99th percentile of
  the calibration scores, the detector's the one its ``predict`` uses (by default the same).
- Metrics are averaged over scored runs / series (NaN where a half has no anomaly), then mean ±
  std over seeds. ``F1`` is point-wise with the label-free threshold; ``oracleF1`` uses the labels
  and is an upper bound only; ``PA-F1`` is read beside ``randPA``, the oracle PA-F1 of random
  scores on the same labels; ``flag/true`` is the share flagged over the true anomalous share.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from diffimpute.baselines.anomaly import make_anomaly_baseline
from diffimpute.metrics import anomaly as M
from diffimpute.postprocess.thresholds import PercentileThreshold
from diffimpute.tasks.anomaly import ImDiffusionDetector
from diffimpute.tasks.anomaly_presets import IMDIFFUSION

sys.path.insert(0, str(Path(__file__).resolve().parent))

from anomaly_suite import KINDS, kind_of, synthetic  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
METRICS = ["VUS-PR", "AUC-PR", "F1", "oracleF1", "flagged", "flag/true", "affF1", "delay", "PA-F1", "randPA"]
BASELINES = ("random", "pca", "kmeans", "iforest", "pca-window", "diff", "rollvar")
SEED_PARAMS = {"random": "seed", "iforest": "random_state", "kmeans": "random_state"}
CALIBRATION = 0.2

# Detector configurations; "default" is the library default. Score-only variants (no retraining)
# are in VARIANTS and reuse each fitted detector.
CONFIGS = {
    "default": {},
    "imdiffusion": dict(IMDIFFUSION),
    "imdiffusion-ddim10": {**IMDIFFUSION, "sampler": "ddim", "sampling_steps": 10},
    "grating": {"masks": "grating"},
    "uncond": {"unconditional": True, "guess": "none", "prediction": "epsilon"},
    "noguess": {"guess": "none"},
    "eps": {"prediction": "epsilon"},
    "w32": {"window": 32},
    "w100": {"window": 100},
    "seg4": {"n_segments": 4},
    "w100-seg4": {"window": 100, "n_segments": 4},
    "big": {"channels": 64, "n_layers": 3},
    "steps10": {"sampling_steps": 10, "vote_steps": (0, 9, 18, 27, 36, 45)},
    "interpolate": {"guess": "interpolate", "n_segments": 10, "smoothing": 64},
    "short-only": {"n_segments": 10},
    "steps300": {"max_steps": 300},
    "z3": {"score": "zscore", "n_samples": 3, "sampling_steps": 3},
    "z2": {"score": "zscore", "n_samples": 2},
    "steps800": {"max_steps": 800},
    "pretrained": {"pretrained": "default", "guess": "interpolate", "max_steps": 0},
}
VARIANTS = {
    "": {},
    "raw": {"standardise": False},
    "sum": {"feature_reduction": "sum"},
    "top3": {"feature_reduction": "topk", "top_k": 3},
    "smooth5": {"smoothing": 5},
    "smooth15": {"smoothing": 15},
    "smooth31": {"smoothing": 31},
    "zscore": {"score": "zscore"},
    "crps": {"score": "crps"},
    "z-top3": {"score": "zscore", "feature_reduction": "topk", "top_k": 3},
    "z-s5": {"score": "zscore", "smoothing": 5},
    "z-s15": {"score": "zscore", "smoothing": 15},
    "z-s31": {"score": "zscore", "smoothing": 31},
    "z-top3-s15": {"score": "zscore", "feature_reduction": "topk", "top_k": 3, "smoothing": 15},
    "z-top3-s31": {"score": "zscore", "feature_reduction": "topk", "top_k": 3, "smoothing": 31},
    "smooth63": {"smoothing": 63},
    "error": {"score": "error"},
    "widths-1-16": {"smoothing": (1, 4, 16)},
    "widths-16-64": {"smoothing": (16, 64)},
    "widths-1-64": {"smoothing": (1, 64)},
    "trim80": {"trim_percentile": 80.0},
    "trim95": {"trim_percentile": 95.0},
    "notrim": {"trim_percentile": None},
    "no-smoothing": {"smoothing": 1},
    "z-s63": {"score": "zscore", "smoothing": 63},
}

# ---------------------------------------------------------------------------- data


def _half(items: list, split: str) -> list:
    cut = (len(items) + 1) // 2
    return {"tune": items[:cut], "report": items[cut:], "all": items}[split]


def skab(split: str) -> list[tuple[np.ndarray, list[tuple[str, np.ndarray, np.ndarray]]]]:
    """One task: the anomaly-free run to train on, the labelled runs of ``split`` to score."""
    root = DATA / "skab"
    train = pd.read_csv(root / "anomaly-free" / "anomaly-free.csv", sep=";", index_col="datetime")
    tests = []
    for folder in ("valve1", "valve2", "other"):
        paths = sorted((root / folder).glob("*.csv"), key=lambda p: int(p.stem))
        for path in _half(paths, split):
            run = pd.read_csv(path, sep=";", index_col="datetime")
            tests.append((f"{folder}/{path.stem}", run[train.columns].to_numpy(float), run["anomaly"].to_numpy(int)))
    return [(train.to_numpy(float), tests)]


def nab(split: str, train_share: float = 0.3):
    """One task per realKnownCause series: its first ``train_share`` to train on, a later half to score."""
    windows = json.loads((DATA / "nab" / "labels" / "combined_windows.json").read_text())
    tasks = []
    for path in sorted((DATA / "nab" / "data" / "realKnownCause").glob("*.csv")):
        frame = pd.read_csv(path, parse_dates=["timestamp"])
        labels = np.zeros(len(frame), dtype=int)
        for start, stop in windows[f"realKnownCause/{path.name}"]:
            labels[(frame.timestamp >= pd.Timestamp(start)) & (frame.timestamp <= pd.Timestamp(stop))] = 1
        values = frame[["value"]].to_numpy(float)
        n_train = int(len(values) * train_share)
        middle = n_train + (len(values) - n_train) // 2
        rows = {"tune": slice(n_train, middle), "report": slice(middle, None), "all": slice(n_train, None)}[split]
        tasks.append((values[:n_train], [(path.stem, values[rows], labels[rows])]))
    return tasks


# ---------------------------------------------------------------------------- metrics


def evaluate(labels: np.ndarray, scores: np.ndarray, flags: np.ndarray, rng: np.random.Generator) -> dict:
    if labels.sum() == 0:
        return {k: float("nan") for k in METRICS}
    return {
        "VUS-PR": M.vus_pr(labels, scores),
        "AUC-PR": M.auc_pr(labels, scores),
        "F1": M.f1_point(labels, flags).f1,
        "oracleF1": M.oracle_best_f1_threshold(labels, scores, point_adjusted=False).f1,
        "flagged": float(np.mean(flags)),
        "flag/true": float(np.mean(flags) / np.mean(labels)),
        "affF1": M.affiliation_metrics(labels, flags).f1,
        "delay": M.detection_delay(labels, flags).mean_delay,
        "PA-F1": M.f1_point_adjusted(labels, flags).f1,
        "randPA": M.random_score_pa_f1(labels, rng, n_trials=3),
    }


def average(rows: list[dict]) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0]}


def whole(test: str) -> str:
    """SKAB and NAB are reported as one group each."""
    return ""


def label_free(calibration_scores: np.ndarray) -> PercentileThreshold:
    return PercentileThreshold(99.0).fit(calibration_scores)


# ---------------------------------------------------------------------------- runners


def run_baseline(name: str, tasks, seed: int, group) -> dict[str, dict]:
    """Metrics per group of test series (``group(name)``), averaged within each group."""
    rng = np.random.default_rng(seed)
    rows: dict[str, list[dict]] = {}
    fit_s = score_s = 0.0
    params = {SEED_PARAMS[name]: seed} if name in SEED_PARAMS else {}
    for train, tests in tasks:
        cut = int(round(len(train) * (1 - CALIBRATION)))
        started = time.perf_counter()
        scorer = make_anomaly_baseline(name, **params).fit(train[:cut])
        threshold = label_free(scorer.score(train[cut:]))
        fit_s += time.perf_counter() - started
        for test, values, labels in tests:
            started = time.perf_counter()
            scores = scorer.score(values)
            score_s += time.perf_counter() - started
            rows.setdefault(group(test), []).append(evaluate(labels, scores, threshold.predict(scores), rng))
    timing = {"fit_s": fit_s, "score_s": score_s, "passes/ts": float("nan")}
    return {g: {**average(r), **timing} for g, r in rows.items()}


def run_detector(params: dict, tasks, seed: int, variants: dict[str, dict], group) -> dict[str, dict[str, dict]]:
    """Fit one detector per task; score every variant, recomputing cell scores only when needed.
    Metrics per variant and group of test series, as in ``run_baseline``."""
    rng = np.random.default_rng(seed)
    rows: dict[str, dict[str, list[dict]]] = {name: {} for name in variants}
    fit_s = score_s = 0.0
    passes = float("nan")
    for train, tests in tasks:
        started = time.perf_counter()
        detector = ImDiffusionDetector(**params, calibration_fraction=CALIBRATION, random_state=seed, device="cpu").fit(train)
        fit_s += time.perf_counter() - started
        passes = detector.network_passes_per_timestamp()
        base = detector.get_params()
        cache: dict[tuple, list[np.ndarray]] = {}
        for name, overrides in variants.items():
            detector.set_params(**overrides)
            key = detector._cells_key()
            if key not in cache:
                started = time.perf_counter()
                cache[key] = [detector.cell_scores(values) for _, values, _ in tests]
                if not overrides:
                    score_s += time.perf_counter() - started
            for (test, _, labels), cells in zip(tests, cache[key]):
                scores, flags = detector.scores_from_cells(cells)[0], detector.flags_from_cells(cells)[0]  # as predict
                rows[name].setdefault(group(test), []).append(evaluate(labels, scores, flags, rng))
            detector.set_params(**{k: base[k] for k in overrides})
    timing = {"fit_s": fit_s, "score_s": score_s, "passes/ts": passes}
    return {name: {g: {**average(r), **timing} for g, r in groups.items()} for name, groups in rows.items()}


def summarise(per_seed: dict[str, list[dict]]) -> pd.DataFrame:
    table = {}
    for method, runs in per_seed.items():
        cells = {}
        for key in METRICS + ["fit_s", "score_s", "passes/ts"]:
            values = np.array([r.get(key, np.nan) for r in runs], dtype=float)  # older runs lack some
            if key in ("fit_s", "score_s", "passes/ts"):
                cells[key] = f"{np.nanmean(values):.1f}"
            else:
                cells[key] = f"{np.nanmean(values):.3f}±{np.nanstd(values):.3f}"
        table[method] = cells
    return pd.DataFrame(table).T


def ratios(per_seed: dict[str, list[dict]]) -> pd.DataFrame:
    """Each detector row's VUS-PR and F1 over the best baseline's (mean over seeds)."""
    mean = {m: {k: np.nanmean([r[k] for r in runs]) for k in ("VUS-PR", "F1")} for m, runs in per_seed.items()}
    best = {k: max(v[k] for m, v in mean.items() if m.startswith("baseline") and "random" not in m) for k in ("VUS-PR", "F1")}
    rows = {m: {f"{k} / best baseline": round(v[k] / best[k], 3) for k in best} for m, v in mean.items()
            if not m.startswith("baseline")}
    return pd.DataFrame(rows).T


def by_kind(per_label: dict[str, dict[str, list[dict]]]) -> dict[str, dict[str, dict[str, list[dict]]]]:
    """The synthetic suite's results per split ("(tune split, ...)"), then per kind in the suite's order."""
    suites: dict[str, dict[str, dict[str, list[dict]]]] = {}
    for label, runs in per_label.items():
        if label.startswith("synthetic/"):
            kind, split = label.removeprefix("synthetic/").split(" ", 1)
            suites.setdefault(split, {})[kind] = runs
    return {split: {k: kinds[k] for k in KINDS if k in kinds} for split, kinds in suites.items()}


def kind_table(per_kind: dict[str, dict[str, list[dict]]], metric: str) -> pd.DataFrame:
    """Method x kind means over seeds of ``metric``, and the mean over kinds (NaN where a kind is missing)."""
    methods = list(dict.fromkeys(m for runs in per_kind.values() for m in runs))
    table = pd.DataFrame(
        {kind: {m: np.nanmean([r.get(metric, np.nan) for r in runs[m]]) if m in runs else np.nan for m in methods}
         for kind, runs in per_kind.items()}
    )
    table["mean"] = table.mean(axis=1, skipna=False)
    return table


def kind_ratios(table: pd.DataFrame) -> pd.DataFrame:
    """Each detector row over the best baseline (random aside) of each column, and who that is."""
    baselines = table.loc[[m for m in table.index if m.startswith("baseline") and "random" not in m]]
    detectors = table.loc[[m for m in table.index if not m.startswith("baseline")]]
    best = baselines.max()
    out = (detectors / best).round(3)
    out.loc["best baseline"] = [f"{baselines[c].idxmax().removeprefix('baseline ')} {best[c]:.3f}" for c in table]
    return out


def show_kinds(split: str, per_kind: dict[str, dict[str, list[dict]]]) -> None:
    """The synthetic suite at a glance: AUC-PR and VUS-PR per kind, ratios, share flagged."""
    for metric in ("AUC-PR", "VUS-PR"):
        table = kind_table(per_kind, metric)
        print(f"\n=== synthetic {split}: {metric} per kind (mean over seeds) ===\n{table.round(3).to_string()}")
        if any(not m.startswith("baseline") for m in table.index) and any("baseline" in m for m in table.index):
            print(f"\n{metric} / best baseline per kind (the mean: over the baseline best on average)")
            print(kind_ratios(table).to_string())
    print(f"\n=== synthetic {split}: flagged / true anomalous share ===\n{kind_table(per_kind, 'flag/true').round(2).to_string()}\n",
          flush=True)


def show(name: str, per_seed: dict[str, list[dict]]) -> None:
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        print(f"\n=== {name} ===\n{summarise(per_seed).to_string()}\n", flush=True)
        if any(m.startswith("baseline") for m in per_seed) and any(not m.startswith("baseline") for m in per_seed):
            print(ratios(per_seed).to_string(), "\n", flush=True)


def show_all(per_label: dict[str, dict[str, list[dict]]]) -> None:
    """SKAB / NAB as one full table each; the synthetic suite per kind."""
    for label, per_seed in per_label.items():
        if not label.startswith("synthetic/"):
            show(label, per_seed)
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        for split, per_kind in by_kind(per_label).items():
            show_kinds(split, per_kind)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", choices=["skab", "nab", "synthetic"], default="skab")
    parser.add_argument("--split", choices=["tune", "report", "all"], default="report")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--configs", nargs="*", default=["default", "imdiffusion"], choices=sorted(CONFIGS),
                        help="detector configurations; none (a bare --configs) runs the baselines alone")
    parser.add_argument("--variants", nargs="*", default=[""], choices=sorted(VARIANTS))
    parser.add_argument("--time-budget", type=float, default=None, help="override every detector's time_budget")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--tag", default=None, help="save the per-seed results as results/anomaly_<tag>.json")
    parser.add_argument("--report", nargs="+", default=None, metavar="TAG", help="merge saved runs and print")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.report:
        merged: dict[str, dict[str, list[dict]]] = {}
        for tag in args.report:
            for dataset, methods in json.loads((RESULTS / f"anomaly_{tag}.json").read_text()).items():
                for method, runs in methods.items():
                    merged.setdefault(dataset, {}).setdefault(method, []).extend(runs)
        show_all(merged)
        return
    tasks = {"skab": skab, "nab": nab, "synthetic": synthetic}[args.dataset](args.split)
    if args.dataset == "synthetic":
        group = kind_of
        counts = {kind: sum(kind_of(t) == kind for _, tests in tasks for t, _, _ in tests) for kind in KINDS}
        labels = {kind: f"synthetic/{kind} ({args.split} split, {n} scored series)" for kind, n in counts.items()}
    else:
        group = whole
        labels = {"": f"{args.dataset} ({args.split} split, {sum(len(t) for _, t in tasks)} scored series)"}
    per_label: dict[str, dict[str, list[dict]]] = {label: {} for label in labels.values()}
    started = time.perf_counter()
    for seed in args.seeds:
        for config in args.configs:
            params = dict(CONFIGS[config])
            if args.time_budget is not None:
                params["time_budget"] = args.time_budget
            variants = {v: VARIANTS[v] for v in args.variants}
            for suffix, groups in run_detector(params, tasks, seed, variants, group).items():
                for g, result in groups.items():
                    per_label[labels[g]].setdefault(config + (f" | {suffix}" if suffix else ""), []).append(result)
            print(f"  seed {seed} {config}: {time.perf_counter() - started:.0f}s", flush=True)
        if not args.no_baselines:
            for baseline in BASELINES:
                if baseline == "pca" and tasks[0][0].shape[1] == 1:
                    continue  # PCA needs fewer components than features
                for g, result in run_baseline(baseline, tasks, seed, group).items():
                    per_label[labels[g]].setdefault(f"baseline {baseline}", []).append(result)
    if args.tag:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"anomaly_{args.tag}.json").write_text(json.dumps(per_label, indent=1))
    show_all(per_label)


if __name__ == "__main__":
    main()
