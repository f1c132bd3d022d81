"""The CUDA defaults of udlc.trainer.device: channels-last convolutions (`memory_format: auto`), fused optimizer
steps, TF32 and bf16 autocast. The choices are checked here on any machine; a run on a GPU, where there is one."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from torch import nn

from tests.conftest import DIGITS_MLP

CONV = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU())
MLP = nn.Sequential(nn.Linear(4, 4))


@pytest.mark.parametrize("choice, device, model, expected", [
    ("auto", "cpu", CONV, False),  # oneDNN on CPU gains little, and contiguous is what a CPU user gets by hand
    ("auto", "cuda", CONV, True),
    ("auto", "cuda", MLP, False),  # nothing to lay out
    ("channels_last", "cpu", CONV, True),
    ("contiguous", "cuda", CONV, False),
])
def test_memory_format_auto_means_channels_last_for_convolutions_on_cuda(choice, device, model, expected) -> None:
    import torch

    from udlc.trainer.device import channels_last

    assert channels_last(choice, torch.device(device), {"model": model}) is expected


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd", "rmsprop"])
def test_optimizers_fuse_their_step_on_cuda_only(optimizer: str) -> None:
    import torch
    from pydantic import TypeAdapter

    from udlc.spec.optimizers import Optimizer
    from udlc.trainer.device import fused
    from udlc.objectives.optimizers import FUSED, make_optimizer

    assert fused(torch.device("cuda")) == {"fused": True} and fused(torch.device("cpu")) == {}
    opt, _ = make_optimizer(nn.Linear(3, 2), TypeAdapter(Optimizer).validate_python({"type": optimizer}))
    assert not opt.defaults.get("fused")  # CPU parameters: torch's default step
    if torch.cuda.is_available():
        opt, _ = make_optimizer(nn.Linear(3, 2).cuda(), TypeAdapter(Optimizer).validate_python({"type": optimizer}))
        assert bool(opt.defaults.get("fused")) is (optimizer in FUSED)


@pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="needs a CUDA device")
def test_a_convnet_on_cuda_trains_with_the_fast_defaults(tmp_path: Path, one_torch_thread) -> None:
    import torch

    from udlc.tasks import compile_spec
    from udlc.trainer.run import train_spec

    spec = {**DIGITS_MLP, "model": {"input": [1, 8, 8], "layers": [
        {"conv2d": {"out_channels": 8, "kernel_size": 3, "padding": 1}}, "relu", "global_avgpool", {"linear": 10}]},
        "train": {"epochs": 2, "batch_size": 64, "device": "cuda"}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    seen = []

    def look(row: dict) -> None:
        seen.append(torch.backends.cuda.matmul.allow_tf32)

    before = torch.backends.cuda.matmul.allow_tf32
    run = train_spec(compile_spec(path), out=tmp_path / "runs", quiet=True, on_epoch=look)
    assert seen == [True, True] and torch.backends.cuda.matmul.allow_tf32 == before  # TF32 for the run only
    info = yaml.safe_load((run / "run.json").read_text())
    assert info["status"] == "done" and info["device"].startswith("cuda")
