"""The data-quality report: how much is missing, how well it can be filled, and what that does downstream.

``quality_report(frame)`` measures; ``QualityReport.to_html()`` renders one self-contained page
(pictures embedded as base64 PNGs, no external URL) from ``templates/quality.html`` (on ``templates/base.html``) with jinja2.

1. Missingness profile: rates, gaps, a heat map over time, co-missingness, and a classifier check
   of whether a column's missingness can be predicted from the other columns' values.
2. Imputation quality: ``evaluate_methods`` on observed cells hidden with the data's own gap
   lengths (``masking.simulate.gaps``), overall and per column, the best method named (a diffusion
   model that fell back to its guess is named so: it did not win, its guess did).
3. Plausibility: imputed medians at the real gaps beside the observed values, and bands.
4. Downstream (with ``target``): a ridge regression trained on complete rows, on linearly imputed
   and on diffusion-imputed rows, scored on the same later rows.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.stats import mannwhitneyu  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402
from sklearn.linear_model import Ridge  # noqa: E402
from sklearn.metrics import mean_absolute_error, r2_score  # noqa: E402
from sklearn.model_selection import KFold, cross_val_predict  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from diffimpute import __version__  # noqa: E402
from diffimpute._progress import progress as progress_bar  # noqa: E402
from diffimpute.baselines import make_baseline  # noqa: E402
from diffimpute.io.files import atomic_write_bytes  # noqa: E402
from diffimpute.masking.simulate import gap_lengths  # noqa: E402
from diffimpute.metrics.imputation import summarize  # noqa: E402
from diffimpute.report.plots import figure_bytes, imputation_figure  # noqa: E402
from diffimpute.tasks.evaluate import (  # noqa: E402
    PROBABILISTIC_METHODS,
    evaluate_methods,
    hide_cells,
    labelled,
    method_label,
)
from diffimpute.tasks.imputer import DiffusionImputer  # noqa: E402

if TYPE_CHECKING:
    from diffimpute.report.table_quality import TableQualityReport

MCAR_METHOD = (
    "For each column with at least 10 missing and 10 observed rows, a gradient-boosted classifier "
    "predicts whether the cell is missing from the other columns' values (5 contiguous folds, so a "
    "gap is not split between training and scoring). ROC AUC near 0.5 means no dependence the "
    "classifier can find (consistent with MCAR); the p-value is a Mann-Whitney test of the "
    "out-of-fold scores and treats rows as independent, so read it as a guide. The check cannot see "
    "a dependence on the missing value itself (MNAR)."
)
_MIN_ROWS_FOR_CHECK = 10
_MAX_HEATMAP_ROWS = 400

# ---------------------------------------------------------------------------- the result


def html_table(frame: pd.DataFrame | None) -> str:
    """``frame`` as an HTML table with 4 significant digits and "-" for a missing number."""
    if frame is None or frame.empty:
        return '<p class="note">Nothing to show.</p>'
    return frame.to_html(float_format=lambda v: f"{v:.4g}", na_rep="-", border=0)



@dataclass
class QualityReport:
    """Everything the report shows, as numbers and PNG bytes, plus its HTML rendering."""

    title: str
    shape: str
    seed: int
    profile: pd.DataFrame
    mcar: pd.DataFrame
    scores: pd.DataFrame | None
    per_column: pd.DataFrame | None
    quality_method: str
    downstream: pd.DataFrame | None
    downstream_method: str
    summary: list[str]
    imputer_refines: bool | None = None  # whether the fit behind sections 3 and 4 beat its guess (None: no fit)
    skipped: list[str] = field(default_factory=list)
    figures: dict[str, bytes] = field(default_factory=dict)

    def to_html(self) -> str:
        """One self-contained HTML page."""
        return render_page("quality.html", "Data-quality report", self, **imputation_sections(self),
                           mcar_method=MCAR_METHOD,
                           per_column=html_table(_named_per_column(self.per_column, self.scores)))


_TEMPLATES = jinja2.Environment(loader=jinja2.PackageLoader("diffimpute.report", "templates"), autoescape=True)


def render_page(template: str, heading: str, report, **sections) -> str:
    """A report as one self-contained HTML page: ``templates/base.html``'s head and summary, from
    ``report``'s title, shape, seed, summary, skipped and figures, plus the ``sections`` that
    ``template`` shows."""
    return _TEMPLATES.get_template(template).render(
        heading=heading, title=report.title, shape=report.shape, version=__version__, seed=report.seed,
        summary=report.summary, skipped=report.skipped,
        figures={k: base64.b64encode(v).decode("ascii") for k, v in report.figures.items()}, **sections,
    )


def imputation_sections(report) -> dict:
    """What the series and table reports both show: missingness profile, dependence, scores
    against the baselines and the downstream effect, with the imputer named honestly."""
    downstream = None if report.downstream is None else html_table(report.downstream.rename(
        index={"diffusion-imputed": method_label("diffusion-imputed", report.imputer_refines)}))
    return {"profile": html_table(report.profile), "mcar": html_table(report.mcar),
            "quality_method": report.quality_method,
            "scores": html_table(None if report.scores is None else labelled(report.scores)),
            "imputer": method_label("diffusion", report.imputer_refines), "downstream": downstream,
            "downstream_method": report.downstream_method}


# ---------------------------------------------------------------------------- sections


def missingness_profile(frame: pd.DataFrame) -> pd.DataFrame:
    """Per column: missing rate, number of gaps, longest and median gap (rows)."""
    rows = {}
    for column in frame.columns:
        lengths = gap_lengths(frame[column].isna().to_numpy())
        rows[str(column)] = {
            "missing_rate": float(frame[column].isna().mean()),
            "n_gaps": len(lengths),
            "longest_gap": int(lengths.max()) if len(lengths) else 0,
            "median_gap": float(np.median(lengths)) if len(lengths) else 0.0,
        }
    return pd.DataFrame(rows).T.astype({"n_gaps": int, "longest_gap": int})


def missingness_dependence(frame: pd.DataFrame, seed: int = 0, *, categorical: Sequence[str] = (),
                           shuffle: bool = False) -> pd.DataFrame:
    """Per column with enough of both: classifier AUC of its missingness from the others, p-value, verdict.

    ``frame`` holds numbers (a categorical column as level codes, named in ``categorical`` so the
    trees split on levels, not on their order). ``shuffle``: folds of random rows, for records;
    contiguous folds (the default) keep a gap of a series within one fold.
    """
    rows = {}
    for column in frame.columns:
        missing = frame[column].isna().to_numpy()
        others = frame.drop(columns=[column])
        if others.shape[1] == 0 or min(missing.sum(), (~missing).sum()) < _MIN_ROWS_FOR_CHECK:
            continue
        levels = [name in categorical for name in others.columns]
        classifier = HistGradientBoostingClassifier(max_iter=100, random_state=seed,
                                                    categorical_features=levels if any(levels) else None)
        folds = KFold(n_splits=5, shuffle=shuffle, random_state=seed if shuffle else None)
        with threadpool_limits(1):  # small fits: OpenMP threads waiting on a busy machine cost 10-100x
            scores = cross_val_predict(classifier, others.to_numpy(dtype=float), missing, cv=folds,
                                       method="predict_proba")[:, 1]
        test = mannwhitneyu(scores[missing], scores[~missing], alternative="greater")
        auc = float(test.statistic / (missing.sum() * (~missing).sum()))
        verdict = "depends on observed values" if auc >= 0.6 and test.pvalue < 0.01 else "consistent with MCAR"
        rows[str(column)] = {"auc": auc, "p_value": float(test.pvalue), "verdict": verdict}
    return pd.DataFrame(rows, index=["auc", "p_value", "verdict"]).T if rows else pd.DataFrame()


def per_column_scores(
    frame: pd.DataFrame, mask: str, seed: int, outputs: dict, alpha: float = 0.1
) -> pd.DataFrame:
    """MAE per column and method on the cells ``evaluate_methods`` hid (same mask, same seed), plus
    the diffusion imputer's CRPS and coverage, and the best method by MAE."""
    truth = frame.to_numpy(dtype=float)
    scale = np.nanstd(truth, axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    _, hidden = hide_cells(frame, mask, seed)
    rows = {}
    for j, column in enumerate(frame.columns):
        if not hidden[:, j].any():
            continue
        only = np.zeros_like(hidden)
        only[:, j] = hidden[:, j]
        row = {}
        for method, output in outputs.items():
            samples = output.samples[:, 0] if method in PROBABILISTIC_METHODS else np.asarray(output, dtype=float)[None]
            scores = summarize(samples / scale, truth / scale, only, alpha=alpha)
            row[f"mae_{method}"] = scores["mae"]
            if method == "diffusion":
                row["crps_diffusion"], row["coverage_diffusion"] = scores["crps_sample"], scores["coverage"]
        maes = {m: row[f"mae_{m}"] for m in outputs}
        row["best"] = min(maes, key=maes.get)
        rows[str(column)] = row
    return pd.DataFrame(rows).T


def _named_per_column(per_column: pd.DataFrame | None, scores: pd.DataFrame | None) -> pd.DataFrame | None:
    """``per_column`` with each method named as in ``labelled(scores)``, in its columns and as the best."""
    if per_column is None or scores is None:
        return per_column
    names = dict(zip(scores.index, labelled(scores).index))

    def renamed(column: str) -> str:  # "mae_diffusion" -> "mae_diffusion (fell back to its guess)"
        figure, _, method = column.partition("_")
        return f"{figure}_{names.get(method, method)}" if method else column

    return per_column.assign(best=per_column["best"].map(names)).rename(columns=renamed)


def downstream_effect(frame: pd.DataFrame, target: str, linear: pd.DataFrame, diffusion: pd.DataFrame) -> pd.DataFrame:
    """Ridge regression on the other columns: complete rows vs linear- vs diffusion-imputed training
    rows, all scored on the same later complete rows (last 25 % in time, target observed)."""
    has_target = frame[target].notna().to_numpy()
    features = [c for c in frame.columns if c != target]
    complete = frame[features].notna().all(axis=1).to_numpy()
    cut = int(len(frame) * 0.75)
    later = np.arange(len(frame)) >= cut
    test = later & has_target & complete
    train = ~later & has_target
    if test.sum() < 20 or (train & complete).sum() < 20:
        raise ValueError(f"too few complete rows with {target!r} observed to compare models (need 20 to train and 20 to score)")
    y = frame[target].to_numpy(dtype=float)
    rows = {}
    for name, source, rows_used in (("complete rows only", frame, train & complete),
                                    ("linear-imputed", linear, train), ("diffusion-imputed", diffusion, train)):
        model = Ridge(alpha=1.0).fit(source[features].to_numpy(dtype=float)[rows_used], y[rows_used])
        prediction = model.predict(frame[features].to_numpy(dtype=float)[test])
        rows[name] = {"training_rows": int(rows_used.sum()), "test_rows": int(test.sum()),
                      "mae": mean_absolute_error(y[test], prediction), "r2": r2_score(y[test], prediction)}
    return pd.DataFrame(rows).T.astype({"training_rows": int, "test_rows": int})


# ---------------------------------------------------------------------------- pictures


def _heatmap(frame: pd.DataFrame) -> bytes:
    missing = frame.isna().to_numpy()
    step = max(1, int(np.ceil(len(missing) / _MAX_HEATMAP_ROWS)))
    pooled = np.array([chunk.any(axis=0) for chunk in np.array_split(missing, int(np.ceil(len(missing) / step)))])
    figure, ax = plt.subplots(figsize=(10, 2.5 + 0.15 * frame.shape[1]))
    ax.imshow(pooled.T, aspect="auto", cmap="Greys", interpolation="nearest")
    ax.set_yticks(range(frame.shape[1]), [str(c) for c in frame.columns])
    ax.set_xlabel(f"time (rows, {step} per pixel; black = missing)")
    ax.set_title("Missing cells over time")
    figure.tight_layout()
    return figure_bytes(figure)


def comissing_figure(frame: pd.DataFrame) -> bytes:
    """PNG: the correlation of every pair of columns' missing indicators (1: always missing together)."""
    indicators = frame.isna().astype(float)
    correlation = indicators.corr().fillna(0.0).to_numpy()
    figure, ax = plt.subplots(figsize=(4 + 0.3 * frame.shape[1], 3.5 + 0.3 * frame.shape[1]))
    image = ax.imshow(correlation, vmin=-1, vmax=1, cmap="RdBu_r")
    labels = [str(c) for c in frame.columns]
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_title("Co-missingness (correlation of missing indicators)")
    figure.colorbar(image, ax=ax)
    figure.tight_layout()
    return figure_bytes(figure)


def _distributions(frame: pd.DataFrame, imputed: pd.DataFrame) -> bytes:
    columns = [c for c in frame.columns if frame[c].isna().any()][:12]
    n_cols = min(4, len(columns))
    n_rows = int(np.ceil(len(columns) / n_cols))
    figure, axes = plt.subplots(n_rows, n_cols, figsize=(3.2 * n_cols, 2.6 * n_rows), squeeze=False)
    for ax, column in zip(axes.flat, columns):
        observed = frame[column].dropna().to_numpy()
        filled = imputed[column][frame[column].isna()].to_numpy()
        bins = np.histogram_bin_edges(np.concatenate([observed, filled]), bins=30)
        ax.hist(observed, bins=bins, density=True, alpha=0.5, label="observed")
        ax.hist(filled, bins=bins, density=True, alpha=0.5, label="imputed (median)")
        ax.set_title(str(column), fontsize=9)
    for ax in list(axes.flat)[len(columns):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7)
    figure.tight_layout()
    return figure_bytes(figure)


# ---------------------------------------------------------------------------- the report


def check_report_inputs(frame: pd.DataFrame, target: str | None, methods: Sequence[str]) -> None:
    """What both reports need of their arguments: a DataFrame, a target among its columns, and the
    diffusion imputer among the methods."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"the report needs a pandas DataFrame, got {type(frame).__name__}")
    if target is not None and target not in frame.columns:
        raise ValueError(f"target {target!r} is not a column; columns are {list(map(str, frame.columns))}")
    if "diffusion" not in methods:
        raise ValueError("methods must include 'diffusion': the report is about the diffusion imputer's quality")


def quality_report(
    frame: pd.DataFrame,
    *,
    target: str | None = None,
    methods: tuple[str, ...] = ("diffusion", "linear", "knn", "mice"),
    holdout: float = 0.1,
    time_budget: float | None = 45.0,
    n_samples: int = 30,
    seed: int = 0,
    title: str = "data",
    diffusion_params: dict | None = None,
    progress: bool = True,
) -> QualityReport:
    """Measure every section of the report for ``frame`` (rows are time, numeric columns).

    ``holdout``: share of observed cells hidden (with the data's own gap lengths) to score the
    imputers; ``time_budget``: seconds of training for each of the two diffusion fits (one on the
    held-out copy for the scores, one on the data itself for the plausibility pictures);
    ``diffusion_params``: any other ``DiffusionImputer`` settings for both fits.
    """
    check_report_inputs(frame, target, methods)
    words = [str(c) for c, t in frame.dtypes.items() if not pd.api.types.is_numeric_dtype(t) or pd.api.types.is_bool_dtype(t)]
    if words:
        raise ValueError(f"columns {words} are not numeric, so this is a table of records, not a time series; "
                         "use diffimpute.report.table_quality.table_report (the CLI decides for itself)")
    profile = missingness_profile(frame)
    missing_share = float(frame.isna().to_numpy().mean())
    skipped: list[str] = []
    figures = {"heatmap": _heatmap(frame), "comissing": comissing_figure(frame)}
    bar = progress_bar(total=4, desc="quality report", unit="stages", enabled=progress, leave=True)
    mcar = missingness_dependence(frame, seed)
    unchecked = [str(c) for c in frame.columns if frame[c].isna().any() and str(c) not in mcar.index]
    if unchecked:
        skipped.append(f"the missingness check for {unchecked} (fewer than {_MIN_ROWS_FOR_CHECK} missing or observed rows)")
    bar.update()
    report = QualityReport(title=title, shape=f"{frame.shape[0]:,} rows x {frame.shape[1]} columns", seed=seed,
                           profile=profile, mcar=mcar, scores=None, per_column=None, quality_method="",
                           downstream=None, downstream_method="", summary=[], skipped=skipped, figures=figures)
    if missing_share == 0:
        report.summary = ["No cell is missing: there is nothing to impute, so the quality, plausibility and "
                          "downstream sections were skipped."]
        skipped.append("imputation quality, plausibility and downstream effect (no missing cells)")
        bar.close()
        return report
    mask = f"gaps:{holdout}"
    report.quality_method = (
        f"{holdout:.0%} of the observed cells were hidden in runs as long as each column's real gaps "
        f"(mask {mask!r}, seed {seed}) and imputed by each method; scores are on those cells only, in "
        f"units of each column's standard deviation. The same numbers come from "
        f"diffimpute.evaluate_methods(frame, mask={mask!r}, seed={seed}). Diffusion training budget "
        f"{time_budget} s."
    )
    params = {"time_budget": time_budget, "verbose": False, **(diffusion_params or {})}
    report.scores, outputs = evaluate_methods(frame, mask, methods, n_samples=n_samples, seed=seed, diffusion_params=params)
    report.per_column = per_column_scores(frame, mask, seed, outputs)
    bar.update()
    imputer = DiffusionImputer(**params, random_state=seed).fit(frame)
    report.imputer_refines = imputer.refines_
    result = imputer.impute(frame, n_samples=n_samples, seed=seed)
    imputed = result.median()
    figures["distributions"] = _distributions(frame, imputed)
    most_gaps = list(profile.sort_values("missing_rate", ascending=False).index[:3])
    figures["series"] = figure_bytes(imputation_figure(result, columns=[c for c in most_gaps if profile.loc[c, "missing_rate"] > 0]))
    bar.update()
    if target is not None:
        linear = make_baseline("linear").fit(frame).transform(frame)
        try:
            report.downstream = downstream_effect(frame, target, linear, imputed)
            report.downstream_method = (
                f"Ridge regression of {target!r} on the other columns, trained on the first 75 % of rows "
                "with the target observed (complete rows only, or every row after imputation) and scored "
                "on the later rows whose features are all observed, the same rows for every model."
            )
        except ValueError as error:
            skipped.append(f"downstream effect ({error})")
    bar.update()
    bar.close()
    report.summary = _summary(frame, profile, mcar, report.scores, report.per_column)
    return report


def dependence_sentence(mcar: pd.DataFrame, advice: str) -> str:
    """The summary's line on ``missingness_dependence``: which columns' gaps other columns predict,
    with the report's own ``advice`` for them."""
    if mcar.empty:
        return "Too few missing cells per column to check whether missingness is random."
    dependent = list(mcar.index[mcar["verdict"] != "consistent with MCAR"])
    if not dependent:
        return "Missingness looks random: no column's gaps can be predicted from the other columns."
    return (f"Missingness of {', '.join(map(repr, dependent))} can be predicted from other columns: not missing "
            f"completely at random, so prefer methods that use the other columns and {advice}.")


def _summary(frame, profile, mcar, scores, per_column) -> list[str]:
    worst = profile["missing_rate"].idxmax()
    longest = profile["longest_gap"].idxmax()
    lines = [
        f"{frame.isna().to_numpy().mean():.1%} of cells are missing ({int(frame.isna().to_numpy().sum()):,} of "
        f"{frame.size:,}); the most-missing column is {worst!r} ({profile.loc[worst, 'missing_rate']:.1%}), and the "
        f"longest gap is {profile.loc[longest, 'longest_gap']} rows in {longest!r}."
    ]
    lines.append(dependence_sentence(mcar, "read intervals with care"))
    if per_column is not None and not per_column.empty:
        by_method = _named_per_column(per_column, scores).groupby("best").groups
        lines.append("Best method by column: " + "; ".join(
            f"{method} for {', '.join(map(repr, columns))}" for method, columns in by_method.items()) + ".")
    if scores is not None and "diffusion" in scores.index:
        coverage = scores.filter(like="coverage").loc["diffusion"].iloc[0]
        figures = (f"covered {coverage:.1%} of held-out cells (a calibrated imputer covers about 90 %); its MAE was "
                   f"{scores.loc['diffusion', 'mae']:.3f} vs {scores['mae'].drop('diffusion').min():.3f} for the "
                   "best other method, in standard deviations.")
        lines.append(
            f"The diffusion imputer's 90 % intervals {figures}" if scores.loc["diffusion", "refines"] else
            "The diffusion imputer fell back to its guess: the model did not beat that guess on its own held-out "
            f"cells, so these figures are the guess's, with calibrated intervals. Its 90 % intervals {figures}"
        )
    return lines


def write_report(report: QualityReport | TableQualityReport, path: str | Path) -> Path:
    """Write ``report.to_html()`` (a series or a table report) to ``path`` atomically."""
    path = Path(path)
    atomic_write_bytes(path, report.to_html().encode("utf-8"))
    return path
