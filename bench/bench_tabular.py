"""Tabular imputation benchmark (issue 10): diffimpute's TabularImputer vs classical and tree peers.

Seven small public tables (``tabular_tables.py``), five masks drawn with diffimpute's own
mechanisms, three seeds. Every method gets the same gappy frame, fits on it and fills it; scores
are on the hidden cells only: numeric MAE / RMSE in units of each column's standard deviation
(observed values of the complete table), categorical accuracy and macro-F1, and for methods that
draw several imputations the sample CRPS and the coverage of the central 90 % interval. One JSON
line per (table, mask, seed, method) goes to ``bench/results/tabular_<part>[_<tag>].jsonl``;
records already in any file of the part are skipped, so a run resumes and splits across
processes (one core each):

    OMP_NUM_THREADS=1 /work/bench-tab-venv/bin/python bench/bench_tabular.py --part peers --tables iris,wine --tag a &
    OMP_NUM_THREADS=1 /work/bench-tab-venv/bin/python bench/bench_tabular.py --part peers --tables digits --tag b &
    wait; /work/bench-tab-venv/bin/python bench/bench_tabular.py --report
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tabular_peers import PEERS, Imputation, categorical_columns, numeric_columns  # noqa: E402
from tabular_tables import MASKS, TABLES, hide  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
OURS = "diffimpute"
N_SAMPLES = 30
RATIO_MASK = "mcar:0.3"


# ---------------------------------------------------------------------------- scoring


def score(truth: pd.DataFrame, hidden: np.ndarray, imputation: Imputation) -> dict[str, float | int | None]:
    """Scores on the hidden cells; NaN where a kind of cell (numeric, categorical) was not hidden."""
    from sklearn.metrics import f1_score

    numeric, categorical = numeric_columns(truth), categorical_columns(truth)
    position = {c: i for i, c in enumerate(truth.columns)}
    out: dict[str, float | int | None] = {"mae": math.nan, "rmse": math.nan, "accuracy": math.nan,
                                          "macro_f1": math.nan, "crps": math.nan, "coverage90": math.nan,
                                          "set_coverage90": math.nan}
    mask = hidden[:, [position[c] for c in numeric]]
    out["n_hidden_numeric"] = int(mask.sum())
    if mask.any():
        values = truth[numeric].to_numpy(dtype=np.float64)
        scale = np.nanstd(values, axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        target = (values / scale)[mask]
        error = (imputation.filled[numeric].to_numpy(dtype=np.float64) / scale)[mask] - target
        out["mae"], out["rmse"] = float(np.abs(error).mean()), float(np.sqrt((error**2).mean()))
        if imputation.draws is not None:
            import scoringrules

            draws = (imputation.draws / scale)[:, mask]  # (n_draws, hidden numeric cells)
            out["crps"] = float(scoringrules.crps_ensemble(target, draws, m_axis=0, estimator="nrg").mean())
            inside = (imputation.lower / scale)[mask] <= target
            out["coverage90"] = float((inside & (target <= (imputation.upper / scale)[mask])).mean())
    # Labels carry their column, so macro-F1 averages over every (column, level) class.
    truths, guesses, in_sets = [], [], []
    for column in categorical:
        rows = hidden[:, position[column]]
        truths += [f"{column}={v}" for v in truth[column][rows]]
        guesses += [f"{column}={v}" for v in imputation.filled[column][rows]]
        if imputation.sets is not None:
            sets = imputation.sets[column].to_numpy()[rows]
            level = pd.Index(imputation.sets[column].columns).get_indexer(truth[column][rows])
            in_sets += list(sets[np.arange(len(level)), level] & (level >= 0))
    out["n_hidden_categorical"] = len(truths)
    if truths:
        out["accuracy"] = float(np.mean(np.array(truths) == np.array(guesses)))
        out["macro_f1"] = float(f1_score(truths, guesses, average="macro"))
    if in_sets:
        out["set_coverage90"] = float(np.mean(in_sets))
    return out


# ------------------------------------------------------------------------------ ours


def ours(gappy: pd.DataFrame, seed: int, **options) -> Imputation:
    """The library's TabularImputer with its defaults (or ``options``, from ``--set``): the
    per-cell median (most likely level for categories), its own 90 % interval and 30 numeric draws."""
    from diffimpute import TabularImputer

    started = time.perf_counter()
    model = TabularImputer(random_state=seed, verbose=False, **options).fit(gappy)
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    result = model.impute(gappy, n_samples=N_SAMPLES, seed=seed)
    impute_s = time.perf_counter() - started
    numeric = numeric_columns(gappy)
    order = [list(result.numeric_columns).index(c) for c in numeric]
    lower, upper = result.interval(0.1)
    fitted = {"refines": model.refines_, "held_out_set_coverage90": model.validation_.get("set_coverage90"),
              "train_s": model.history_.seconds, "epochs": len(model.history_.train_loss),
              "stopped": model.history_.stopped}
    sets = {column: result.prediction_set(column) for column in categorical_columns(gappy)}
    return Imputation(result.median(), fit_s, impute_s, draws=result.numeric_samples()[:, :, order],
                      lower=lower[numeric].to_numpy(dtype=np.float64), upper=upper[numeric].to_numpy(dtype=np.float64),
                      fitted=fitted, sets=sets)


# ------------------------------------------------------------------------------- runs


def _done(part: str) -> set[tuple]:
    keys = set()
    for path in RESULTS.glob(f"tabular_{part}*.jsonl"):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            keys.add((record["table"], record["mask"], record["seed"], record["method"]))
    return keys


def run(args) -> None:
    methods = {OURS: ours} if args.part == "ours" else dict(PEERS)
    if args.part == "ours" and args.set:
        options = dict(_option(text) for text in args.set)
        methods = {f"{OURS}[{','.join(args.set)}]": lambda gappy, seed: ours(gappy, seed, **options)}
    if args.methods:
        unknown = set(args.methods) - set(methods)
        if unknown:
            raise SystemExit(f"unknown methods {sorted(unknown)} for --part {args.part}; known: {sorted(methods)}")
        methods = {m: methods[m] for m in args.methods}
    done = _done(args.part)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"tabular_{args.part}{'_' + args.tag if args.tag else ''}.jsonl"
    for table in args.tables:
        truth = TABLES[table]()
        for mask in args.masks:
            for seed in args.seeds:
                gappy, hidden = hide(truth, mask, seed)
                for method, impute in methods.items():
                    if (table, mask, seed, method) in done:
                        continue
                    record = {"table": table, "mask": mask, "seed": seed, "method": method}
                    try:
                        imputation = impute(gappy, seed)
                        record |= {**score(truth, hidden, imputation), "fit_s": imputation.fit_s,
                                   "impute_s": imputation.impute_s,
                                   "n_draws": 1 if imputation.draws is None else len(imputation.draws),
                                   **(imputation.fitted or {})}
                    except Exception as error:  # one failing peer must not stop the others
                        record["error"] = f"{type(error).__name__}: {error}"[:500]
                    # NaN is not JSON; null reads back as NaN.
                    record = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in record.items()}
                    with out.open("a") as handle:
                        handle.write(json.dumps(record) + "\n")
                    print(time.strftime("%H:%M:%S"), json.dumps(record), flush=True)


# ----------------------------------------------------------------------------- report


def _mean_std(values: pd.Series) -> str:
    if values.isna().all():
        return "-"
    return f"{values.mean():.3f}" if values.count() < 2 else f"{values.mean():.3f}±{values.std():.3f}"


def report(part: str | None) -> None:
    pattern = f"tabular_{part or ''}*.jsonl"
    lines = [json.loads(line) for p in sorted(RESULTS.glob(pattern)) for line in p.read_text().splitlines()]
    table = pd.DataFrame(lines).drop_duplicates(["table", "mask", "seed", "method"], keep="last")
    if "error" in table:
        for row in table[table["error"].notna()].itertuples():
            print(f"FAILED {row.table} {row.mask} seed {row.seed} {row.method}: {row.error}")
        table = table[table["error"].isna()]
    order = {name: i for i, name in enumerate([OURS, *PEERS])}
    for (name, mask), cell in table.groupby(["table", "mask"], sort=False):
        rows = []
        for method, runs in sorted(cell.groupby("method"), key=lambda item: order.get(item[0], len(order))):
            rows.append({"method": method, "seeds": len(runs), "mae": _mean_std(runs["mae"]),
                         "rmse": _mean_std(runs["rmse"]), "accuracy": _mean_std(runs["accuracy"]),
                         "macro_f1": _mean_std(runs["macro_f1"]), "crps": _mean_std(runs["crps"]),
                         "coverage90": _mean_std(runs["coverage90"]), "fit_s": f"{runs['fit_s'].mean():.2f}",
                         "impute_s": f"{runs['impute_s'].mean():.2f}"})
        print(f"\n## {name}  {mask}")
        print(pd.DataFrame(rows).to_string(index=False))
    print()
    means = table.groupby(["table", "mask", "method"])[["mae", "accuracy"]].mean().reset_index()
    for name in dict.fromkeys(table["table"]):
        at = means[(means["table"] == name) & (means["mask"] == RATIO_MASK)].set_index("method")
        peers = at.drop(index=OURS, errors="ignore")
        if OURS not in at.index or peers.empty:
            print(f"{name} {RATIO_MASK}: {OURS} or its peers not run")
            continue
        best_mae = peers["mae"].idxmin()
        text = f"{name} {RATIO_MASK}: MAE {at.loc[OURS, 'mae']:.3f} / best peer {best_mae} {peers.loc[best_mae, 'mae']:.3f} = {at.loc[OURS, 'mae'] / peers.loc[best_mae, 'mae']:.2f}"
        if peers["accuracy"].notna().any():
            best_acc = peers["accuracy"].idxmax()
            text += f"; accuracy {at.loc[OURS, 'accuracy']:.3f} vs best peer {best_acc} {peers.loc[best_acc, 'accuracy']:.3f}"
        print(text)


def _option(text: str) -> tuple[str, object]:
    """``name=value`` with a JSON value (``guess="auto"`` may be written ``guess=auto``)."""
    name, _, value = text.partition("=")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["ours", "peers"])
    parser.add_argument("--report", action="store_true", help="print the tables from every result file (of --part, if given)")
    parser.add_argument("--tables", type=lambda s: s.split(","), default=list(TABLES))
    parser.add_argument("--masks", type=lambda s: s.split(","), default=list(MASKS))
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2])
    parser.add_argument("--methods", type=lambda s: s.split(","), default=None, help="run only these methods")
    parser.add_argument("--tag", default="", help="suffix of the results file, to run a part in pieces")
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                        help="--part ours: TabularImputer parameters other than the defaults (the method is "
                             "then named after them)")
    args = parser.parse_args()
    if args.report:
        report(args.part)
        return
    if args.part is None:
        parser.error("give --part ours|peers or --report")
    unknown = set(args.tables) - set(TABLES)
    if unknown:
        parser.error(f"unknown tables {sorted(unknown)}; known: {', '.join(TABLES)}")
    if args.part == "ours":
        try:
            from diffimpute import TabularImputer  # noqa: F401
        except ImportError as error:
            print(f"--part ours needs diffimpute.TabularImputer, which this diffimpute lacks ({error})", file=sys.stderr)
            raise SystemExit(1) from None
    run(args)


if __name__ == "__main__":
    main()
