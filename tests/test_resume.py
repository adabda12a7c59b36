"""Resuming: a fit killed with SIGKILL and resumed ends with the model of a fit never stopped, no
half-written file is left under a file's name, and a checkpoint of another run is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

import diffimpute
from diffimpute import DiffusionImputer
from diffimpute.cli.main import cli
from diffimpute.engine.checkpoint import Checkpointing, load_checkpoint
from diffimpute.engine.trainer import TrainConfig, train
from tests.conftest import TINY, structured, with_gaps
from tests.test_trainer import _regression_loss, _windows

_PARAMS = {**TINY, "channels": 8, "max_epochs": 8, "patience": 100, "time_budget": None}

# A fit in its own process, so that it can be killed like a real one.
_CHILD = """
import json, sys, warnings
import numpy as np, torch
torch.set_num_threads(1)
warnings.simplefilter("ignore")
from diffimpute import DiffusionImputer
from diffimpute.engine.checkpoint import Checkpointing
data, params, checkpoint, output, resume = sys.argv[1:]
imputer = DiffusionImputer(**json.loads(params))
imputer.fit(np.load(data), checkpoint=Checkpointing(checkpoint, every_epochs=1, every_seconds=None),
            resume=resume == "resume")
imputer.save(output)
"""


class _Crash(Exception):
    pass


def _crashing_after(steps: int):
    """The regression loss, raising at its ``steps``-th call as a crash would."""
    calls = iter(range(10**6))

    def loss(model, batch, generator, shard):
        if next(calls) == steps:
            raise _Crash
        return _regression_loss(model, batch, generator, shard)

    return loss


def _toy() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.2), nn.Linear(16, 8))


def _score(model: nn.Module) -> float:
    probe = _windows(16).values[:, 0]
    return float(((model(probe) - 2 * probe) ** 2).mean())


def _child(tmp_path: Path, data: Path, checkpoint: str, output: str, resume: str) -> list[str]:
    return [sys.executable, "-c", _CHILD, str(data), json.dumps(_PARAMS), str(tmp_path / checkpoint),
            str(tmp_path / output), resume]


def _env() -> dict[str, str]:
    source = str(Path(diffimpute.__file__).parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])}


def test_a_fit_killed_with_sigkill_and_resumed_equals_one_never_stopped(tmp_path: Path) -> None:
    data = tmp_path / "data.npy"
    np.save(data, with_gaps(structured(), 0.2, seed=1)[0])
    killed = subprocess.Popen(_child(tmp_path, data, "fit.ckpt", "model.safetensors", "fresh"), env=_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    checkpoint = tmp_path / "fit.ckpt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists():
        assert killed.poll() is None, killed.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.005)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    killed.stderr.close()
    assert killed.returncode == -signal.SIGKILL
    # Killed midway: a whole checkpoint of an unfinished run, no model, no temporary file.
    _, state = load_checkpoint(checkpoint)
    assert not state["position"]["finished"] and state["position"]["epoch"] < _PARAMS["max_epochs"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.npy", "fit.ckpt"]

    resumed = subprocess.run(_child(tmp_path, data, "fit.ckpt", "model.safetensors", "resume"), env=_env(),
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    # The same fit, never stopped, in this process (one thread, as the child).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = DiffusionImputer(**_PARAMS).fit(np.load(data))
    model = DiffusionImputer.load(tmp_path / "model.safetensors")
    assert model.history_.best_score == whole.history_.best_score
    assert json.dumps(model.validation_, sort_keys=True) == json.dumps(whole.validation_, sort_keys=True)  # NaN too
    assert model.history_.train_loss == whole.history_.train_loss
    for name, weight in whole.model_.state_dict().items():
        assert torch.equal(model.model_.state_dict()[name], weight), name


@pytest.mark.parametrize("crash_at", [20, 24])  # mid-epoch (8 batches an epoch), and at an epoch's end
def test_a_resumed_run_restores_optimiser_ema_dropout_and_shuffle_exactly(tmp_path: Path, crash_at: int) -> None:
    config = TrainConfig(max_epochs=6, batch_size=8, learning_rate=1e-2, ema_decay=0.9, patience=100)
    whole = _toy()
    expected = train(whole, _regression_loss, _windows(), config, validate=_score, progress=False)
    plan = Checkpointing(tmp_path / "run.ckpt", every_epochs=None, every_seconds=1e-9)  # after every batch
    with pytest.raises(_Crash):
        train(_toy(), _crashing_after(crash_at), _windows(), config, validate=_score, progress=False, checkpoint=plan)
    resumed = _toy()
    history = train(resumed, _regression_loss, _windows(), config, validate=_score, progress=False, checkpoint=plan,
                    resume=True)
    assert {**history.to_dict(), "seconds": 0} == {**expected.to_dict(), "seconds": 0}
    for name, weight in whole.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], weight), name


def test_resuming_a_finished_run_trains_nothing_and_gives_its_model(tmp_path: Path) -> None:
    plan = Checkpointing(tmp_path / "run.ckpt")
    config = TrainConfig(max_epochs=3, batch_size=8)
    first = _toy()
    done = train(first, _regression_loss, _windows(), config, validate=_score, progress=False, checkpoint=plan)
    again = _toy()
    history = train(again, _crashing_after(0), _windows(), config, validate=_score, progress=False, checkpoint=plan,
                    resume=True)  # a single training step would raise
    assert history.to_dict() == done.to_dict()
    assert all(torch.equal(again.state_dict()[k], v) for k, v in first.state_dict().items())


def test_seconds_already_trained_count_towards_the_time_budget(tmp_path: Path) -> None:
    plan = Checkpointing(tmp_path / "run.ckpt", every_epochs=1, every_seconds=None)
    with pytest.raises(_Crash):
        train(_toy(), _crashing_after(20), _windows(), TrainConfig(max_epochs=6, batch_size=8), progress=False,
              checkpoint=plan)
    _, state = load_checkpoint(plan.path)
    spent = state["position"]["spent"]
    assert spent > 0
    # A budget already spent: the resumed run stops before any step (which would raise).
    history = train(_toy(), _crashing_after(0), _windows(), TrainConfig(max_epochs=6, batch_size=8, time_budget=spent / 2),
                    progress=False, checkpoint=plan, resume=True)
    assert history.stopped == "time_budget" and len(history.train_loss) == 3


def test_a_checkpoint_of_another_run_is_refused_saying_what_differs(tmp_path: Path) -> None:
    plan = Checkpointing(tmp_path / "run.ckpt", every_epochs=1)
    values = with_gaps(structured(), 0.2, seed=1)[0]
    params = {**TINY, "channels": 8, "max_epochs": 1, "time_budget": None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        DiffusionImputer(**params).fit(values, checkpoint=plan)
        with pytest.raises(ValueError, match="data differ"):
            DiffusionImputer(**params).fit(with_gaps(structured(), 0.2, seed=2)[0], checkpoint=plan, resume=True)
        with pytest.raises(ValueError, match="training settings, parameters differ"):
            DiffusionImputer(**{**params, "learning_rate": 0.01}).fit(values, checkpoint=plan, resume=True)
        with pytest.raises(ValueError, match="another training run"):
            DiffusionImputer(**{**params, "random_state": 1}).fit(values, checkpoint=plan, resume=True)
        model = tmp_path / "model.safetensors"
        DiffusionImputer(**params).fit(values).save(model)
        with pytest.raises(ValueError, match="not a training checkpoint"):
            DiffusionImputer(**params).fit(values, checkpoint=model, resume=True)
    with pytest.raises(ValueError, match="resume=True needs checkpoint"):
        DiffusionImputer(**params).fit(values, resume=True)
    with pytest.raises(ValueError, match="every_epochs must be"):
        Checkpointing(tmp_path / "x", every_epochs=0)


def test_the_cli_resumes_and_removes_its_checkpoint_once_the_model_is_written(tmp_path: Path) -> None:
    values = with_gaps(structured(120, 3), 0.1, seed=2)[0]
    np.savetxt(tmp_path / "data.csv", values, delimiter=",", header="a,b,c", comments="")
    args = ["fit", str(tmp_path / "data.csv"), "-o", str(tmp_path / "model.safetensors"), "--window", "16",
            "--channels", "8", "--layers", "1", "--epochs", "2", "--device", "cpu", "--quiet"]
    first = CliRunner().invoke(cli, [*args, "--checkpoint-every", "1", "--resume"])
    assert first.exit_code == 0, first.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv", "model.safetensors"]
    bad = CliRunner().invoke(cli, [*args, "--checkpoint-every", "often"])
    assert bad.exit_code == 2 and "--checkpoint-every must be" in bad.output
