"""diffimpute: fill missing data with diffusion models and say how sure you are.

Public names only; see the README for a tour.
"""

__version__ = "0.1.0"

from pathlib import Path  # noqa: E402

from diffimpute.engine.checkpoint import load_checkpoint  # noqa: E402
from diffimpute.report.quality import QualityReport, quality_report, write_report  # noqa: E402
from diffimpute.report.table_quality import TableQualityReport, table_report  # noqa: E402
from diffimpute.tasks.anomaly import ImDiffusionDetector  # noqa: E402
from diffimpute.tasks.augment import DiffusionAugmenter  # noqa: E402
from diffimpute.tasks.evaluate import evaluate_methods  # noqa: E402
from diffimpute.tasks.image import ImageInpainter  # noqa: E402
from diffimpute.tasks.imputer import DiffusionImputer, LatentDiffusionImputer  # noqa: E402
from diffimpute.tasks.result import (  # noqa: E402
    DrawsResult,
    ImageInpaintingResult,
    ImputationResult,
    TableImputationResult,
)
from diffimpute.tasks.tabular import TabularImputer  # noqa: E402

_ESTIMATORS = {
    cls.__name__: cls
    for cls in (DiffusionImputer, LatentDiffusionImputer, TabularImputer, ImDiffusionDetector, DiffusionAugmenter,
                ImageInpainter)
}


def load(path: str | Path) -> DiffusionImputer | TabularImputer | ImDiffusionDetector | DiffusionAugmenter | ImageInpainter:
    """Load any model saved with ``.save(path)`` or the CLI; the file says which estimator it is."""
    _, metadata = load_checkpoint(path, tensors=False)
    name = metadata.get("estimator")
    if name not in _ESTIMATORS:
        raise ValueError(f"{path} holds an unknown estimator {name!r}; known: {sorted(_ESTIMATORS)}")
    return _ESTIMATORS[name].load(path)


def report(frame, path: str | Path | None = None, **options) -> QualityReport | TableQualityReport:
    """The data-quality report of ``frame``: a table's (``report.table_quality.table_report``
    options) when a column is not numeric, else a series' (``report.quality.quality_report``);
    written as one self-contained HTML file when ``path`` is given."""
    import pandas as pd

    table = isinstance(frame, pd.DataFrame) and any(
        not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype) for dtype in frame.dtypes)
    measured = table_report(frame, **options) if table else quality_report(frame, **options)
    if path is not None:
        write_report(measured, path)
    return measured


__all__ = [
    "DiffusionAugmenter",
    "DiffusionImputer",
    "ImDiffusionDetector",
    "ImageInpainter",
    "DrawsResult",
    "ImageInpaintingResult",
    "ImputationResult",
    "QualityReport",
    "TableQualityReport",
    "TableImputationResult",
    "TabularImputer",
    "LatentDiffusionImputer",
    "__version__",
    "evaluate_methods",
    "load",
    "report",
    "table_report",
]
