"""The released ImDiffusion settings, kept apart from the detector's defaults for comparison.

The defaults of ``ImDiffusionDetector`` are what measured best here (``bench/bench_anomaly.py``);
this preset is the original paper's configuration (17000cyh/IMDiffusion), so a user or a benchmark
can run both side by side: ``ImDiffusionDetector(**IMDIFFUSION)`` or ``diffimpute detect --preset imdiffusion``.
"""

from __future__ import annotations

IMDIFFUSION = {
    "window": 100, "stride": 50, "n_segments": 10, "masks": "grating", "train_masks": "random",
    "random_mask_ratio": 0.7, "unconditional": True, "guess": "none", "prediction": "epsilon",
    "scaler": "minmax", "value_scale": 20.0, "score": "error", "standardise": False,
    "feature_reduction": "max", "ensemble": "vote", "vote_steps": tuple(range(0, 30, 3)),
    "vote_fraction": 0.02, "smoothing": 1, "x0_clip": None, "sampler": "ddpm", "n_samples": 1,
    "channels": 64, "n_layers": 4, "n_heads": 8, "dropout": 0.1, "learning_rate": 1e-3, "batch_size": 32,
}
"""The released ImDiffusion settings (17000cyh/IMDiffusion), for ``ImDiffusionDetector(**IMDIFFUSION)``."""
