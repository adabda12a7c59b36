"""Every bad input gets a clear error naming the cause and the fix, and no half-written file."""

from __future__ import annotations

import json
import os
import struct
import sys

import numpy as np
import pandas as pd
import pytest

from diffimpute import DiffusionImputer, load
from diffimpute.engine.trainer import train
from diffimpute.io.files import atomic_write_bytes
from tests.conftest import TINY


def _fit(data) -> DiffusionImputer:
    return DiffusionImputer(**{**TINY, "max_epochs": 1}).fit(data)


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        (pd.DataFrame(), ValueError, "empty"),
        (pd.DataFrame({"a": [1.0, 2.0] * 10, "b": [np.nan] * 20}), ValueError, r"entirely missing: \['b'\]"),
        (pd.DataFrame({"a": [1.0] * 20, "city": ["x"] * 20}), TypeError, r"non-numeric columns \['city'\]"),
        (pd.DataFrame({"a": [1.0, np.inf] * 10}), ValueError, r"infinite values in columns \['a'\]"),
        (pd.DataFrame({"a": np.arange(20.0)}, index=np.arange(20)[::-1]), ValueError, "not sorted"),
        (pd.DataFrame({"a": np.arange(20.0)}, index=[0] * 20), ValueError, "duplicate index"),
        (np.zeros((2, 3, 4, 5)), ValueError, "2 dimensions"),
        ([[1.0, 2.0]], TypeError, "DataFrame or a NumPy array"),
    ],
)
def test_bad_data_at_fit(data, error, match) -> None:
    with pytest.raises(error, match=match):
        _fit(data)


def test_window_longer_than_series() -> None:
    with pytest.raises(ValueError, match=r"window \(16\) is longer than the series \(10"):
        _fit(np.random.default_rng(0).normal(size=(10, 2)))


def test_columns_at_transform_must_match_fit(fitted: DiffusionImputer, frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"missing \['c'\], unexpected \['d'\]"):
        fitted.transform(frame.rename(columns={"c": "d"}))
    with pytest.raises(ValueError, match="different order"):
        fitted.transform(frame[["c", "b", "a"]])
    with pytest.raises(ValueError, match="3"):
        fitted.transform(np.zeros((40, 2)))


def test_n_samples_must_be_positive(fitted: DiffusionImputer, frame: pd.DataFrame) -> None:
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="n_samples must be an integer >= 1"):
            fitted.impute(frame, n_samples=bad)


def test_unknown_options_name_the_valid_set(frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"target_strategy must be one of \('random', 'historical', 'mix', 'gaps'\)"):
        DiffusionImputer(**{**TINY, "target_strategy": "best"}).fit(frame)
    with pytest.raises(ValueError, match="sampler must be one of"):
        DiffusionImputer(**{**TINY, "sampler": "euler"}).fit(frame)
    with pytest.raises(ValueError, match="prediction must be one of"):
        DiffusionImputer(**{**TINY, "prediction": "score"}).fit(frame)
    with pytest.raises(ValueError, match="guess must be one of"):
        DiffusionImputer(**{**TINY, "guess": "spline"}).fit(frame)


def forbid_training(monkeypatch, message: str) -> None:
    """Make the engine's ``train`` fail, under every name a diffimpute module imported it as
    (the imputer trains through ``tasks.refiner``, its prior through ``tasks.imputer_prior``)."""

    def no_training(*args, **kwargs):
        raise AssertionError(message)

    users = [m for name, m in sys.modules.items() if name.startswith("diffimpute.") and getattr(m, "train", None) is train]
    assert any(m.__name__ == "diffimpute.tasks.refiner" for m in users)
    for module in users:
        monkeypatch.setattr(module, "train", no_training)


def test_bad_parameters_fail_at_fit_before_any_training(frame: pd.DataFrame, monkeypatch) -> None:
    forbid_training(monkeypatch, "training started before the parameters were checked")
    for bad, message in [({"time_budget": 0}, "time_budget must be a positive"),
                         ({"channels": 10, "n_heads": 4}, "multiple of n_heads"),
                         ({"validation_fraction": 1.5}, "validation_fraction"),
                         ({"sampler": "ddpm", "sampling_steps": 5}, "DDPM visits all"),
                         ({"n_samples": 0}, "n_samples")]:
        with pytest.raises(ValueError, match=message):
            DiffusionImputer(**{**TINY, **bad}).fit(frame)


def test_corrupted_and_truncated_model_files(fitted: DiffusionImputer, tmp_path) -> None:
    path = tmp_path / "model.safetensors"
    fitted.save(path)
    payload = path.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(payload[: len(payload) // 2])
    with pytest.raises(ValueError, match="corrupted or truncated"):
        load(truncated)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="corrupted or truncated"):
        load(garbage)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "absent.safetensors")


def _rewrite_header(payload: bytes, edit) -> bytes:
    size = struct.unpack("<Q", payload[:8])[0]
    header = json.loads(payload[8 : 8 + size])
    inner = json.loads(header["__metadata__"]["diffimpute"])
    header["__metadata__"]["diffimpute"] = json.dumps(edit(inner))
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    return struct.pack("<Q", len(encoded)) + encoded + payload[8 + size :]


def test_newer_format_version_asks_for_an_upgrade(fitted: DiffusionImputer, tmp_path) -> None:
    path = tmp_path / "model.safetensors"
    fitted.save(path)
    newer = tmp_path / "newer.safetensors"
    newer.write_bytes(_rewrite_header(path.read_bytes(), lambda h: {**h, "format_version": 99}))
    with pytest.raises(ValueError, match="upgrade diffimpute"):
        load(newer)


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch) -> None:
    target = tmp_path / "out.csv"
    target.write_bytes(b"previous contents")

    def crash(*_):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new contents")
    assert target.read_bytes() == b"previous contents"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_written_files_follow_the_umask_and_keep_symlinks(tmp_path) -> None:
    previous = os.umask(0o022)
    try:
        plain = tmp_path / "plain.csv"
        atomic_write_bytes(plain, b"a")
        assert plain.stat().st_mode & 0o777 == 0o644
        real = tmp_path / "real.csv"
        real.write_bytes(b"old")
        link = tmp_path / "link.csv"
        link.symlink_to(real)
        atomic_write_bytes(link, b"new")
        assert link.is_symlink() and real.read_bytes() == b"new"
    finally:
        os.umask(previous)


def test_unknown_output_suffix_is_an_error_not_csv_content(tmp_path) -> None:
    from diffimpute.io.files import write_table

    with pytest.raises(ValueError, match=".csv"):
        write_table(pd.DataFrame({"a": [1.0]}), tmp_path / "out.xlsx")
    assert not list(tmp_path.iterdir())


def test_a_series_of_a_few_rows_is_refused_not_trained() -> None:
    from diffimpute import DiffusionImputer

    with pytest.raises(ValueError, match="at least 4"):
        DiffusionImputer(time_budget=1).fit(pd.DataFrame({"a": [1.0], "b": [2.0]}))


def test_timestamps_across_a_daylight_saving_change_become_times_and_are_order_checked(tmp_path) -> None:
    from diffimpute.io.files import read_table

    rows = ["time,a", "2024-03-31T01:00:00+01:00,1", "2024-03-31T03:00:00+02:00,2", "2024-03-31T04:00:00+02:00,3"]
    path = tmp_path / "dst.csv"
    path.write_text("\n".join(rows) + "\n")
    frame = read_table(path)
    assert isinstance(frame.index, pd.DatetimeIndex) and str(frame.index.tz) == "UTC"
    assert frame.index[1] - frame.index[0] == pd.Timedelta(hours=1)  # 01:00+01 and 03:00+02 are an hour apart
    rows[2] = "2024-03-31T00:30:00+01:00,2"  # now out of order once the offsets are read
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match="not sorted"):
        _fit(read_table(path))


def test_data_with_no_observed_value_at_impute_is_an_error_not_noise(fitted: DiffusionImputer,
                                                                     frame: pd.DataFrame) -> None:
    """One dead feature is imputed from the others (tests/test_imputer.py); nothing at all is refused."""
    with pytest.raises(ValueError, match="no observed value at all"):
        fitted.transform(frame * np.nan)


def test_whole_number_features_get_whole_number_medians_with_an_even_number_of_draws() -> None:
    values = np.round(np.sin(np.arange(200) / 5)[:, None] * [10, 20] + 30)
    gappy = values.copy()
    gappy[::3, 0] = np.nan
    result = DiffusionImputer(**{**TINY, "max_epochs": 2}).fit(gappy).impute(gappy, n_samples=8)
    for summary in (result.median(), result.mean(), result.quantile(0.3)):
        assert np.array_equal(summary, np.round(summary))


def test_a_write_killed_by_sigkill_leaves_no_file_behind(tmp_path) -> None:
    """The process dies with SIGKILL after writing the data and before naming the file: the old
    file is untouched and no hidden temporary file is left in the folder."""
    import signal
    import subprocess
    import sys

    target = tmp_path / "out.csv"
    target.write_bytes(b"previous contents")
    script = (
        "import os, signal, sys\n"
        "from diffimpute.io import files\n"
        "os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)\n"
        "files.atomic_write_bytes(sys.argv[1], b'x' * 1_000_000)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(target)], capture_output=True)
    assert done.returncode == -signal.SIGKILL
    assert target.read_bytes() == b"previous contents"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_wide_data_train_in_smaller_batches_within_the_memory_bound(monkeypatch) -> None:
    """A frame so wide that a default batch would not fit the training-memory bound trains in
    smaller batches, and says so, instead of asking for tens of GB."""
    from diffimpute.engine import trainer
    from diffimpute.tasks import refiner

    sizes = []
    original = trainer.train

    def recording(model, loss_fn, windows, config, **kwargs):
        sizes.append(config.batch_size)
        return original(model, loss_fn, windows, config, **kwargs)

    monkeypatch.setattr(refiner, "train", recording)
    per_window = 240 * 16 * 8 * TINY["channels"]  # 8 features x window 16 at TINY's width
    monkeypatch.setattr(refiner, "TRAINING_MEMORY_BYTES", 3 * per_window)
    values = np.random.default_rng(0).normal(size=(120, 8))
    values[::4, 0] = np.nan
    with pytest.warns(UserWarning, match="batches of 3 are used"):
        DiffusionImputer(**{**TINY, "max_epochs": 1}).fit(values)
    assert sizes == [3]
