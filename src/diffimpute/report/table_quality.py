"""The data-quality report for a table: rows are independent records, columns numeric or categorical.

``table_report(frame)`` measures; ``TableQualityReport.to_html()`` renders one self-contained page
from ``templates/table_quality.html``. The sections are those of the series report
(``report.quality``), with what a time axis gave there replaced by what records have:

1. Missingness profile: each column's kind and share missing, the commonest sets of columns
   missing together in a row, co-missingness, and the series report's classifier check of whether
   a column's missingness can be predicted from the other columns (categories as levels, folds of
   random rows, since row order means nothing here).
2. Imputation quality: ``evaluate_table_methods`` on observed cells hidden at random: the
   diffusion ``TabularImputer`` against KNN, MICE and a MissForest-style imputer, overall and per
   column (a diffusion model that fell back to its guess is named so).
3. Plausibility: the imputed cells' distribution beside the observed one, column by column.
4. Downstream (with ``target``): a model of the target trained on complete rows only, on
   mean/mode-imputed rows and on diffusion-imputed rows, scored on the same held-out complete rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.linear_model import LogisticRegression, Ridge  # noqa: E402
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, r2_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from diffimpute._progress import progress as progress_bar  # noqa: E402
from diffimpute.baselines.tabular import TableBaseline  # noqa: E402
from diffimpute.data.table import TableEncoder  # noqa: E402
from diffimpute.data.table_times import is_time, to_days  # noqa: E402
from diffimpute.metrics.imputation import summarize  # noqa: E402
from diffimpute.report.plots import figure_bytes  # noqa: E402
from diffimpute.report.quality import (  # noqa: E402
    check_report_inputs,
    comissing_figure,
    dependence_sentence,
    html_table,
    imputation_sections,
    missingness_dependence,
    render_page,
)
from diffimpute.tasks.evaluate import (  # noqa: E402
    evaluate_table_methods,
    hide_table_cells,
    labelled,
)
from diffimpute.tasks.result import TableImputationResult  # noqa: E402
from diffimpute.tasks.tabular import TabularImputer  # noqa: E402

TABLE_REPORT_METHODS = ("diffusion", "knn", "mice", "missforest")
TABLE_TIME_BUDGET = 15.0  # seconds per TabularImputer fit: a 1,000-row report in well under 2 minutes
DEPENDENCE_METHOD = (
    "For each column with at least 10 missing and 10 observed rows, a gradient-boosted classifier "
    "predicts whether the cell is missing from the other columns' values (categorical columns as "
    "levels; 5 folds of random rows). ROC AUC near 0.5 means no dependence the classifier can find "
    "(consistent with MCAR); the p-value is a Mann-Whitney test of the out-of-fold scores, a guide "
    "rather than a proof. The check cannot see a dependence on the missing value itself (MNAR)."
)
_MIN_ROWS = 20  # fewer cannot both train an imputer and hold out cells to score it
_MAX_PATTERNS = 8
_MAX_PICTURED = 12
_TEST_SHARE = 0.25


# ---------------------------------------------------------------------------- the result


@dataclass
class TableQualityReport:
    """Everything the table report shows, as numbers and PNG bytes, plus its HTML rendering."""

    title: str
    shape: str
    seed: int
    profile: pd.DataFrame
    patterns: pd.DataFrame
    mcar: pd.DataFrame
    scores: pd.DataFrame | None = None
    per_column: pd.DataFrame | None = None
    numeric_plausibility: pd.DataFrame | None = None
    categorical_plausibility: pd.DataFrame | None = None
    downstream: pd.DataFrame | None = None
    quality_method: str = ""
    downstream_method: str = ""
    summary: list[str] = field(default_factory=list)
    imputer_refines: bool | None = None  # whether the fit behind sections 3 and 4 beat its guess (None: no fit)
    skipped: list[str] = field(default_factory=list)
    figures: dict[str, bytes] = field(default_factory=dict)

    def to_html(self) -> str:
        """One self-contained HTML page."""
        return render_page(
            "table_quality.html", "Data-quality report (table)", self, **imputation_sections(self),
            patterns=html_table(self.patterns),
            mcar_method=DEPENDENCE_METHOD, per_column=html_table(self.per_column), measured=self.scores is not None,
            numeric=html_table(self.numeric_plausibility), categorical=html_table(self.categorical_plausibility),
        )


# ---------------------------------------------------------------------------- sections


def _numbers(column: pd.Series) -> np.ndarray:
    """A numeric column's values as floats; dates and durations in days, not in pandas' raw ticks."""
    return to_days(column) if is_time(column.dtype) else column.to_numpy(dtype=float)


def table_profile(frame: pd.DataFrame, encoder: TableEncoder) -> pd.DataFrame:
    """Per column: kind (with the number of levels of a categorical one), cells missing and their share."""
    missing = frame.isna()
    kinds = [spec.kind if spec.kind == "numeric" else f"categorical ({len(spec.levels)} levels)"
             for spec in encoder.columns]
    return pd.DataFrame({"kind": kinds, "missing": missing.sum().to_numpy(), "missing_rate": missing.mean().to_numpy()},
                        index=pd.Index([spec.name for spec in encoder.columns], name="column"))


def missing_patterns(frame: pd.DataFrame, top: int = _MAX_PATTERNS) -> pd.DataFrame:
    """The ``top`` commonest sets of columns missing together in a row, with their row counts and shares."""
    names = np.array([str(c) for c in frame.columns])
    keys = pd.Series([", ".join(names[row]) or "(none: complete rows)" for row in frame.isna().to_numpy()])
    counts = keys.value_counts().head(top)
    return pd.DataFrame({"rows": counts.to_numpy(), "share": counts.to_numpy() / len(frame)},
                        index=pd.Index(counts.index, name="columns missing"))


def per_column_table_scores(frame: pd.DataFrame, mask: str, seed: int, scores: pd.DataFrame, outputs: dict,
                            alpha: float = 0.1) -> pd.DataFrame:
    """Per column with hidden cells: each method's MAE in standard deviations (numeric) or accuracy
    (categorical) on the cells ``evaluate_table_methods`` hid (same mask, same seed), the diffusion
    imputer's interval coverage on numeric columns, and the best method, named as in ``labelled``."""
    encoder = TableEncoder.of(frame)
    truth = encoder.codes(frame)
    _, hidden = hide_table_cells(frame, mask, seed)
    names = dict(zip(scores.index, labelled(scores).index))
    draws = {m: o.samples if isinstance(o, TableImputationResult) else encoder.codes(o)[None] for m, o in outputs.items()}
    points = {m: encoder.codes(o.median()) if isinstance(o, TableImputationResult) else draws[m][0]
              for m, o in outputs.items()}
    rows = {}
    for j, spec in enumerate(encoder.columns):
        cells = hidden[:, j]
        if not cells.any():
            continue
        only = np.zeros_like(hidden)
        only[:, j] = cells
        row: dict = {"score": "MAE (sd)" if spec.kind == "numeric" else "accuracy", "cells": int(cells.sum())}
        if spec.kind == "numeric":
            scale = float(np.nanstd(truth[:, j])) or 1.0
            for method, samples in draws.items():
                measured = summarize(samples / scale, truth / scale, only, alpha=alpha)
                row[names[method]] = measured["mae"]
                if method == "diffusion":
                    row[f"coverage_{1 - alpha:.0%}"] = measured["coverage"]
            best = min(names.values(), key=lambda name: row[name])
        else:
            row.update({names[m]: float((p[cells, j] == truth[cells, j]).mean()) for m, p in points.items()})
            best = max(names.values(), key=lambda name: row[name])
        rows[spec.name] = {**row, "best": best}
    return pd.DataFrame(rows).T


def plausibility(frame: pd.DataFrame, draw: pd.DataFrame, encoder: TableEncoder) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The imputed cells of ``draw`` (one draw per cell: a median is narrower than the data by
    construction) beside the observed cells, per column with gaps. Numeric: means, the shift of
    the mean in standard deviations, the ratio of spreads and the share outside the observed range;
    categorical: the commonest level of each and the total-variation distance of the level shares."""
    numeric, categorical = {}, {}
    for spec, (name, column) in zip(encoder.columns, frame.items()):
        gaps = column.isna().to_numpy()
        if not gaps.any() or gaps.all():
            continue
        observed, imputed = column[~gaps], draw[name][gaps]
        if spec.kind == "numeric":
            observed, imputed = _numbers(observed), _numbers(imputed)
            sd = float(observed.std()) or 1.0
            numeric[spec.name] = {
                "imputed_cells": int(gaps.sum()), "observed_mean": observed.mean(), "imputed_mean": imputed.mean(),
                "mean_shift_sd": (imputed.mean() - observed.mean()) / sd, "spread_ratio": imputed.std() / sd,
                "outside_observed_range": float(((imputed < observed.min()) | (imputed > observed.max())).mean())}
        else:
            seen, filled = observed.value_counts(normalize=True), imputed.value_counts(normalize=True)
            shares = pd.concat([seen, filled], axis=1).fillna(0.0).to_numpy()
            categorical[spec.name] = {
                "imputed_cells": int(gaps.sum()), "commonest_observed": f"{seen.index[0]} ({seen.iloc[0]:.0%})",
                "commonest_imputed": f"{filled.index[0]} ({filled.iloc[0]:.0%})",
                "level_shift_tv": 0.5 * float(np.abs(shares[:, 0] - shares[:, 1]).sum())}
    return pd.DataFrame(numeric).T, pd.DataFrame(categorical).T


def table_downstream(frame: pd.DataFrame, target: str, filled: dict[str, pd.DataFrame], seed: int) -> pd.DataFrame:
    """A model of ``target`` from the other columns (ridge regression for a numeric target, logistic
    regression for a categorical one; categories one-hot, all standardised) trained on complete rows
    only and on each imputed table in ``filled``, all scored on the same held-out complete rows
    (a random quarter of the rows with the target and every feature observed)."""
    features = [c for c in frame.columns if c != target]
    has_target = frame[target].notna().to_numpy()
    complete = has_target & frame[features].notna().all(axis=1).to_numpy()
    test = complete & (np.random.default_rng(seed).random(len(frame)) < _TEST_SHARE)
    train = has_target & ~test
    if test.sum() < 20 or (train & complete).sum() < 20:
        raise ValueError(f"too few complete rows with {target!r} observed to compare models (need 20 to train and 20 to score)")
    encoder, answer = TableEncoder.of(frame[features]), TableEncoder.of(frame[[target]])
    numeric = bool(answer.numeric[0])
    y = answer.codes(frame[[target]])[:, 0]
    rows = {}
    for name, source, used in (("complete rows only", frame, train & complete),
                               *((label, table, train) for label, table in filled.items())):
        x = encoder.encode(encoder.codes(source[features]))
        model = make_pipeline(StandardScaler(), Ridge(alpha=1.0) if numeric else LogisticRegression(max_iter=1000))
        prediction = model.fit(x[used], y[used]).predict(encoder.encode(encoder.codes(frame[features]))[test])
        scored = ({"mae": mean_absolute_error(y[test], prediction), "r2": r2_score(y[test], prediction)} if numeric else
                  {"accuracy": accuracy_score(y[test], prediction),
                   "macro_f1": f1_score(y[test], prediction, average="macro")})
        rows[name] = {"training_rows": int(used.sum()), "test_rows": int(test.sum()), **scored}
    return pd.DataFrame(rows).T.astype({"training_rows": int, "test_rows": int})


# ---------------------------------------------------------------------------- pictures


def _distributions(frame: pd.DataFrame, draw: pd.DataFrame, encoder: TableEncoder) -> bytes:
    """Observed (grey) beside imputed (blue) per column with gaps: histograms on shared bins, level shares."""
    shown = [(spec, name) for spec, name in zip(encoder.columns, frame.columns)
             if frame[name].isna().any() and frame[name].notna().any()][:_MAX_PICTURED]
    width = min(4, len(shown))
    height = -(-len(shown) // width)
    figure, axes = plt.subplots(height, width, figsize=(3.2 * width, 2.6 * height), squeeze=False)
    for ax, (spec, name) in zip(axes.flat, shown):
        gaps = frame[name].isna()
        observed, imputed = frame[name][~gaps], draw[name][gaps]
        if spec.kind == "numeric":
            values = [_numbers(observed), _numbers(imputed)]
            bins = np.histogram_bin_edges(np.concatenate(values), bins=30)
            for data, colour, label in zip(values, ("tab:gray", "tab:blue"), ("observed", "imputed (one draw)")):
                ax.hist(data, bins=bins, density=True, alpha=0.5, color=colour, label=label)
        else:
            shares = pd.DataFrame({"observed": observed.astype(str).value_counts(normalize=True),
                                   "imputed (one draw)": imputed.astype(str).value_counts(normalize=True)})
            shares.fillna(0.0).head(12).plot.bar(ax=ax, color=["tab:gray", "tab:blue"], alpha=0.8, legend=False, rot=30)
        ax.set_title(spec.name, fontsize=9)
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7)
    figure.suptitle("observed (grey) vs imputed (blue)")
    figure.tight_layout()
    return figure_bytes(figure)


# ---------------------------------------------------------------------------- the report


def _check_table(frame: pd.DataFrame, target: str | None, methods: tuple[str, ...], holdout: float) -> TableEncoder:
    """Every input the report cannot work with, as one clear error; the table's encoder."""
    check_report_inputs(frame, target, methods)
    if frame.shape[1] < 2:
        raise ValueError(f"the table has {frame.shape[1]} column(s); the report needs at least two, since a cell "
                         "is imputed and its missingness explained from the other columns of its row")
    if len(frame) < _MIN_ROWS:
        raise ValueError(f"the table has {len(frame)} rows; the report needs at least {_MIN_ROWS} to train the "
                         "imputers and hold out cells to score them")
    if frame.isna().to_numpy().all():
        raise ValueError("every cell of the table is missing; there is nothing to learn from")
    empty = [str(c) for c in frame.columns if frame[c].isna().all()]
    if empty:
        raise ValueError(f"columns {empty} are entirely missing; drop them: no imputer can learn their values "
                         "and no cell of them can be held out to score one")
    if not 0 < holdout < 1:
        raise ValueError(f"holdout is the share of observed cells hidden to score the imputers; pass a number "
                         f"between 0 and 1, got {holdout}")
    return TableEncoder.of(frame)


def table_report(
    frame: pd.DataFrame,
    *,
    target: str | None = None,
    methods: tuple[str, ...] = TABLE_REPORT_METHODS,
    holdout: float = 0.1,
    time_budget: float | None = TABLE_TIME_BUDGET,
    n_samples: int = 30,
    seed: int = 0,
    title: str = "data",
    diffusion_params: dict | None = None,
    progress: bool = True,
) -> TableQualityReport:
    """Measure every section of the report for ``frame`` (rows are independent records; numeric and
    categorical columns).

    ``holdout``: share of observed cells hidden at random to score the imputers; ``time_budget``:
    seconds of training for each of the two ``TabularImputer`` fits (one on the held-out copy for
    the scores, one on the table itself for sections 3 and 4); ``diffusion_params``: any other
    ``TabularImputer`` settings for both fits.
    """
    encoder = _check_table(frame, target, tuple(methods), holdout)
    profile = table_profile(frame, encoder)
    categorical = [spec.name for spec in encoder.columns if spec.kind == "categorical"]
    bar = progress_bar(total=4, desc="table report", unit="stages", enabled=progress, leave=True)
    codes = pd.DataFrame(encoder.codes(frame), columns=profile.index)
    report = TableQualityReport(
        title=title, shape=f"{frame.shape[0]:,} rows x {frame.shape[1]} columns ({len(categorical)} categorical)",
        seed=seed, profile=profile, patterns=missing_patterns(frame),
        mcar=missingness_dependence(codes, seed, categorical=categorical, shuffle=True),
        figures={"comissing": comissing_figure(frame)})
    unchecked = [c for c in profile.index if profile.loc[c, "missing"] > 0 and c not in report.mcar.index]
    if unchecked:
        report.skipped.append(f"the missingness check for {unchecked} (fewer than 10 missing or observed rows)")
    bar.update()
    if not frame.isna().to_numpy().any():
        report.summary = _summary(frame, report)
        report.skipped.append("imputation quality, plausibility and downstream effect (no missing cells)")
        bar.close()
        return report
    mask = f"mcar:{holdout}"
    cap = "with no time cap" if time_budget is None else f"capped at {time_budget:g} s per fit"
    params = {"time_budget": time_budget, "verbose": False, **(diffusion_params or {})}
    report.scores, outputs = evaluate_table_methods(frame, mask, methods, n_samples=n_samples, seed=seed,
                                                    diffusion_params=params)
    report.per_column = per_column_table_scores(frame, mask, seed, report.scores, outputs)
    report.quality_method = (
        f"{holdout:.0%} of the observed cells were hidden at random (mask {mask!r}, seed {seed}) and imputed "
        "by each method; scores are on those cells only: numeric cells in units of each column's standard "
        "deviation (MAE, RMSE, CRPS; 90 % interval coverage and width for the diffusion imputer, whose "
        f"{n_samples} draws per cell give it intervals), categorical cells by accuracy and macro-F1 of "
        "the most likely level. The same numbers come from diffimpute.tasks.evaluate.evaluate_table_methods("
        f"frame, mask={mask!r}, seed={seed}). Budgets: TabularImputer training {cap}; KNN with 5 neighbours; MICE and the MissForest-style imputer (scikit-learn IterativeImputer "
        "with 10 extra-trees per column, 5 rounds) as in diffimpute.baselines. Categorical columns are one-hot "
        "channels for the baselines, the largest channel giving the level. Cells hidden at random are "
        "easier than real gaps that depend on other values, so read these as a best case."
    )
    bar.update()
    imputer = TabularImputer(**params, random_state=seed).fit(frame)
    report.imputer_refines = imputer.refines_
    result = imputer.impute(frame, n_samples=n_samples, seed=seed)
    draw = encoder.to_frame(result.samples[0], frame)
    report.numeric_plausibility, report.categorical_plausibility = plausibility(frame, draw, encoder)
    report.figures["distributions"] = _distributions(frame, draw, encoder)
    bar.update()
    if target is not None:
        filled = {"mean/mode-imputed": TableBaseline("mean").fit(frame).transform(frame),
                  "diffusion-imputed": result.median()}
        try:
            report.downstream = table_downstream(frame, target, filled, seed)
            model = "ridge regression" if encoder.numeric[list(profile.index).index(str(target))] else "logistic regression"
            report.downstream_method = (
                f"{model.capitalize()} of {target!r} on the other columns (categories one-hot, all standardised), "
                f"trained on the rows with the target observed outside a random {_TEST_SHARE:.0%} of the complete "
                "rows (complete rows only, or every such row after imputation), and scored on that held-out "
                "quarter, the same rows for every model."
            )
        except ValueError as error:
            report.skipped.append(f"downstream effect ({error})")
    bar.update()
    bar.close()
    report.summary = _summary(frame, report)
    return report


def _summary(frame: pd.DataFrame, report: TableQualityReport) -> list[str]:
    profile, patterns, mcar = report.profile, report.patterns, report.mcar
    if report.scores is None:
        return ["No cell is missing: there is nothing to impute, so the quality, plausibility and "
                "downstream sections were skipped."]
    worst = profile["missing_rate"].idxmax()
    complete = float(frame.notna().all(axis=1).mean())
    lines = [f"{frame.isna().to_numpy().mean():.1%} of cells are missing ({int(profile['missing'].sum()):,} of "
             f"{frame.size:,}); the most-missing column is {worst!r} ({profile.loc[worst, 'missing_rate']:.1%}); "
             f"{complete:.1%} of rows are complete, and the commonest set of missing columns in an incomplete "
             f"row is {_commonest_gap(patterns)}."]
    lines.append(dependence_sentence(mcar, "expect the imputed values to differ from the observed ones"))
    if not report.per_column.empty:
        by_method = report.per_column.groupby("best").groups
        lines.append("Best method by column: " + "; ".join(
            f"{method} for {', '.join(map(repr, columns))}" for method, columns in by_method.items()) + ".")
    scores = report.scores
    coverage = scores.filter(like="coverage").loc["diffusion"]
    if len(coverage) and pd.notna(coverage.iloc[0]):
        figures = (f"its 90 % intervals covered {coverage.iloc[0]:.1%} of held-out numeric cells (a calibrated "
                   f"imputer covers about 90 %) and its MAE was {scores.loc['diffusion', 'mae']:.3f} vs "
                   f"{scores['mae'].drop('diffusion').min():.3f} for the best other method, in standard deviations.")
        lines.append(f"The diffusion imputer: {figures}" if scores.loc["diffusion", "refines"] else
                     "The diffusion imputer fell back to its guess: the model did not beat that guess on its own "
                     f"held-out cells, so these figures are the guess's, with calibrated intervals; {figures}")
    elif not scores.loc["diffusion", "refines"]:
        lines.append("The diffusion imputer fell back to its guess: the model did not beat that guess on its own "
                     "held-out cells, so its scores are the guess's.")
    return lines


def _commonest_gap(patterns: pd.DataFrame) -> str:
    incomplete = patterns[~patterns.index.str.startswith("(none")]
    return "-" if incomplete.empty else f"{incomplete.index[0]} ({incomplete['rows'].iloc[0]:,} rows)"

