"""The synthetic-data report: how well an augmenter's rows stand in for real ones, as one HTML page.

Scored against the rows the augmenter held out at ``fit`` (``held_out_``), never against the rows
it learned from alone, so that a generator that copies its training rows cannot look good: column
shapes, pair-wise correlation trends, real-vs-synthetic AUC, TSTR against TRTR (with a class
column) and the distance-to-closest-record share (``metrics.synthetic``). The page extends the
reports' shared ``base.html`` through ``render_page``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from diffimpute.metrics.synthetic import SyntheticQuality, synthetic_quality
from diffimpute.report.augment_plots import augmentation_figure
from diffimpute.report.plots import figure_bytes
from diffimpute.report.quality import html_table, render_page

MAX_PAIRS = 30  # worst correlation pairs shown; a 30-column table has 435
METHOD = ("Scored on the rows the augmenter held out at fit (it never trained on them). Discriminator AUC: a "
          "random forest told to separate held-out real rows from synthetic rows, out of fold; 0.5 means it "
          "cannot. TSTR / TRTR: balanced accuracy on the held-out rows of a forest trained on the synthetic rows "
          "/ on the real training rows. DCR share: share of synthetic rows closer to a training row than to a "
          "held-out row, against as many training rows as held-out ones; 0.5 is ideal, more means copying.")


# ------------------------------------------------------------------------- the result


@dataclass
class AugmentReport:
    """Everything the page shows: the figures of ``metrics.synthetic`` and the augmenter's fit-time choice."""

    title: str
    shape: str
    seed: int
    quality: SyntheticQuality
    selection: pd.DataFrame | None
    summary: list[str]
    figures: dict[str, bytes] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def headline(self) -> pd.DataFrame:
        """The summary figures as a one-column table."""
        values = {k: v for k, v in self.quality.summary().items() if v is not None}
        return pd.DataFrame({"value": values}).rename_axis("measure")

    def to_html(self) -> str:
        """One self-contained HTML page."""
        shapes = self.quality.shapes.sort_values().to_frame()
        return render_page("augment_quality.html", "Synthetic-data report", self, method=METHOD,
                           headline=html_table(self.headline()), shapes=html_table(shapes),
                           trends=html_table(self.quality.trends.head(MAX_PAIRS)), max_pairs=MAX_PAIRS,
                           selection=html_table(self.selection))


# ------------------------------------------------------------------------- building it


def _selection(augmenter) -> pd.DataFrame | None:
    """One row per guidance scale tried at fit, the chosen one marked."""
    if augmenter.selection_ is None:
        return None
    frame = pd.DataFrame.from_dict(augmenter.selection_.candidates, orient="index").rename_axis("guidance")
    frame["chosen"] = ["yes" if g == augmenter.guidance_scale_ else "" for g in frame.index]
    return frame


def _summary(quality: SyntheticQuality, augmenter) -> list[str]:
    figures = quality.summary()
    lines = [f"Column shapes {figures['column_shapes']:.3f} and pair trends "
             f"{'-' if figures['pair_trends'] is None else format(figures['pair_trends'], '.3f')} (1 is perfect); "
             f"a classifier tells synthetic from held-out real rows with AUC {quality.discriminator_auc:.3f} "
             "(0.5: it cannot)."]
    if quality.tstr is not None:
        lines.append(f"A forest trained on synthetic rows scores {quality.tstr:.3f} balanced accuracy on held-out "
                     f"rows, {figures['tstr_over_trtr']:.2f} x the {quality.trtr:.3f} of one trained on the real "
                     "training rows.")
    verdict = "within" if 0.45 <= quality.dcr_share <= 0.55 else "outside"
    guard = "on" if augmenter.reject_copies and augmenter.copy_distance_ > 0 else "off"
    lines.append(f"DCR share {quality.dcr_share:.3f}: {verdict} the 0.45-0.55 band around the ideal 0.5 "
                 f"(copy guard {guard}).")
    return lines


def augment_report(augmenter, real: pd.DataFrame, synthetic: pd.DataFrame, target: str | None = None,
                   title: str = "data", seed: int = 0) -> AugmentReport:
    """Score ``synthetic`` rows against ``real``, the frame ``augmenter`` was fitted on (with the
    ``target`` class column, if the fit had labels); ``seed`` seeds the forests."""
    held = getattr(augmenter, "held_out_", None)
    if held is None or len(held) < 2:
        raise ValueError("the augmenter held out no rows at fit (validation_fraction=0), so there is nothing "
                         "unseen to score the synthetic rows against; refit with validation_fraction > 0")
    if not isinstance(real, pd.DataFrame) or not isinstance(synthetic, pd.DataFrame):
        raise TypeError("the synthetic-data report is for tables: pass the real and synthetic rows as DataFrames")
    is_held = pd.Series(False, index=range(len(real)))
    is_held[held] = True
    train, holdout = real[~is_held.to_numpy()], real[is_held.to_numpy()]
    quality = synthetic_quality(train, synthetic[list(real.columns)], holdout, target, seed)
    figures = {"distributions": figure_bytes(augmentation_figure(holdout, synthetic[list(real.columns)]))}
    return AugmentReport(title=title, shape=f"{len(real)} real rows ({len(holdout)} held out), "
                                            f"{len(synthetic)} synthetic rows, {real.shape[1]} columns",
                         seed=seed, quality=quality, selection=_selection(augmenter),
                         summary=_summary(quality, augmenter), figures=figures)
