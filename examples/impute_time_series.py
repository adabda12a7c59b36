"""Probabilistic imputation of a gappy multivariate series, with intervals and a plot.

First with the shipped pretrained model as it is (no training), then fine-tuned on the data.

Run: python examples/impute_time_series.py   (about two minutes on 2 CPU cores)
"""

from __future__ import annotations

import numpy as np

from diffimpute import DiffusionImputer
from diffimpute.datasets import seattle_weather
from diffimpute.report.plots import plot_imputation


def main() -> None:
    weather = seattle_weather()
    gaps = np.random.default_rng(0).random(weather.shape) < 0.15
    gappy = weather.mask(gaps)

    hidden = gaps & weather.notna().to_numpy()
    zero_shot = DiffusionImputer.from_pretrained(random_state=0).transform(gappy)
    print(f"zero-shot MAE on hidden cells: {np.abs(zero_shot.to_numpy() - weather.to_numpy())[hidden].mean():.3f}")

    imputer = DiffusionImputer(random_state=0)  # fine-tunes the pretrained model for 300 steps
    imputer.fit(gappy)
    print("held-out check after fit (standardised units):", imputer.validation_)
    result = imputer.impute(gappy)

    median = result.median()
    lower, upper = result.interval(0.1)
    error = np.abs(median.to_numpy() - weather.to_numpy())[hidden].mean()
    inside = ((lower.to_numpy() <= weather.to_numpy()) & (weather.to_numpy() <= upper.to_numpy()))[hidden].mean()
    guess_error = np.abs(result.guess.to_numpy() - weather.to_numpy())[hidden].mean()
    print(f"fine-tuned MAE on hidden cells: {error:.3f} (its guess, linear interpolation: {guess_error:.3f}); "
          f"90% interval covers {inside:.0%} of them")
    print(result.to_frame(quantiles=(0.05, 0.95)).head())
    print("plot:", plot_imputation(result, "weather_imputation.png", truth=weather))


if __name__ == "__main__":
    main()
