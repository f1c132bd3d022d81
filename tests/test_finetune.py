"""Fine-tuning as users do it: optimizer.groups and layer_decay (each parameter's lr and weight decay in the
optimizer's param_groups), gradual unfreezing by epoch (resumed exactly across it), LoRA (equal to peft's, only the
adapters trained and checkpointed, the base reloaded on resume, merged into a parity-checked export), the trainable
and frozen counts of `udlc summary`, and `check`'s refusals at their lines."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import DIGITS_MLP
from udlc.errors import SpecError, SpecErrors
from udlc.tasks import compile_spec, compile_text

MLP = [{"linear": 32}, "relu", {"linear": 16}, "relu", {"linear": 10}]  # nodes linear, linear_1, linear_2


class Killed(Exception):
    pass


def spec_text(**sections: Any) -> str:
    doc = {**DIGITS_MLP, "model": {"input": [64], "layers": MLP}, **sections}
    doc.pop("export")
    return yaml.safe_dump(doc, sort_keys=False)


def errors_of(text: str) -> list[SpecError]:
    """What `udlc check` refuses in `text`. udlc.compiler.finetune.check_finetune is run after the whole check
    when the check has not run it itself (until the compiler's pipeline calls it beside check_freeze)."""
    from udlc.compiler.finetune import check_finetune

    try:
        compiled = compile_text(text, "t.yaml")
    except SpecErrors as e:
        return e.errors
    return check_finetune(compiled.spec, compiled.graphs, compiled.doc)


def at(text: str, needle: str) -> tuple[int, int]:
    """(line, column) of `needle`'s first occurrence in `text`, counting from 1."""
    before = text[:text.index(needle)]
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


def optimizer_of(text: str) -> tuple[Any, dict[str, tuple[float, float]]]:
    """The model as training builds it, and each parameter's (lr, weight decay) in its optimizer."""
    import torch

    from udlc.objectives.finetune import held
    from udlc.objectives.optimizers import make_optimizer
    from udlc.trainer.run import build_models

    compiled = compile_text(text, "t.yaml")
    model = build_models(compiled, torch.device("cpu"))["model"]
    opt, _ = make_optimizer(model, compiled.spec.optimizer, compiled.graph, held(model, compiled.spec, compiled.graph))
    ids = {id(p): n for n, p in model.named_parameters()}
    return model, {ids[id(p)]: (g["lr"], g["weight_decay"]) for g in opt.param_groups for p in g["params"]}


# ---- optimizer.groups and layer_decay ---------------------------------------------------------------------------

def test_groups_give_each_parameter_its_lr_and_weight_decay() -> None:
    text = spec_text(optimizer={"type": "adamw", "lr": 0.01, "weight_decay": 0.1, "groups": [
        {"match": ["linear"], "lr": 0.001},  # the first layer only: patterns match whole names
        {"match": ["linear_*"], "weight_decay": 0.0, "lr": 0.002},
        {"match": ["linear_2"], "lr": 0.5}]})  # linear_2 is named first by the group above: that one wins
    _, settings = optimizer_of(text)
    assert settings == {"linear.weight": (0.001, 0.1), "linear.bias": (0.001, 0.0),
                        "linear_1.weight": (0.002, 0.0), "linear_1.bias": (0.002, 0.0),
                        "linear_2.weight": (0.002, 0.0), "linear_2.bias": (0.002, 0.0)}


def test_layer_decay_by_hand_with_a_repeated_block_and_a_group() -> None:
    """Layers: linear, each use of block `mlp` (two, by repeat), layernorm, the head: factors 0.5^4 … 1."""
    doc = {**DIGITS_MLP, "model": {"input": [64], "blocks": {"mlp": {"layers": [{"linear": 8}, "relu", {"linear": 8}]}},
                                   "layers": [{"linear": 8}, {"mlp": {"repeat": 2}}, "layernorm", {"linear": 10}]},
           "optimizer": {"type": "sgd", "lr": 0.1, "layer_decay": 0.5, "groups": [{"match": ["layernorm"], "lr": 1.0}]}}
    doc.pop("export")
    compiled = compile_text(yaml.safe_dump(doc), "t.yaml")
    nodes = [n for n, node in compiled.graph.nodes.items() if node.params]
    assert nodes == ["linear", "mlp_linear", "mlp_linear_1", "mlp_1_linear", "mlp_1_linear_1", "layernorm",
                     "linear_1"]
    _, settings = optimizer_of(yaml.safe_dump(doc))
    expected = {"linear": 0.1 * 0.5 ** 4, "mlp_linear": 0.1 * 0.5 ** 3, "mlp_linear_1": 0.1 * 0.5 ** 3,
                "mlp_1_linear": 0.1 * 0.5 ** 2, "mlp_1_linear_1": 0.1 * 0.5 ** 2, "layernorm": 1.0 * 0.5,
                "linear_1": 0.1}
    for name, (lr, _) in settings.items():
        assert lr == pytest.approx(expected[name.split(".")[0]]), name


# ---- gradual unfreezing -------------------------------------------------------------------------------------

def test_unfreeze_at_its_epoch_and_a_resume_across_it_is_exact(tmp_path: Path, one_torch_thread) -> None:
    import torch
    from safetensors.torch import load_file

    from udlc.compiler.lower import lower
    from udlc.trainer.run import resume_run, train_spec

    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text(
        optimizer={"type": "adamw", "lr": 0.003}, schedule={"type": "cosine", "warmup_steps": 5},
        model={"input": [64], "layers": [{"linear": 32}, "relu", {"dropout": 0.2}, {"linear": 16}, "relu",
                                          {"linear": 10}]},
        train={"epochs": 3, "batch_size": 128, "deterministic": True, "checkpoint_seconds": 0,
               "freeze": ["linear", "linear_1"],
               "unfreeze": [{"epoch": 2, "layers": ["linear_1"]}, {"epoch": 3, "layers": ["linear"]}]}))
    straight = train_spec(compile_spec(spec), out=tmp_path / "straight", quiet=True)
    seen: list[dict] = []

    def kill(row: dict) -> None:
        (run,) = (tmp_path / "killed").glob("*/*")
        seen.append(load_file(str(run / "checkpoints" / "last.safetensors")))
        if row["epoch"] == 2:
            raise Killed

    with pytest.raises(Killed):
        train_spec(compile_spec(spec), out=tmp_path / "killed", quiet=True, on_epoch=kill)
    (killed,) = (tmp_path / "killed").glob("*/*")
    resume_run(killed, quiet=True)
    for name in ("best", "last"):
        a, b = (load_file(str(run / "checkpoints" / f"{name}.safetensors")) for run in (straight, killed))
        assert a.keys() == b.keys() and [k for k in a if not a[k].equal(b[k])] == [], name

    fresh = lower(compile_spec(spec).graph, seed=0).state_dict()
    after_1, after_2 = (s for s in seen)
    final = load_file(str(straight / "checkpoints" / "last.safetensors"))
    # linear_1 trains from epoch 2, linear from epoch 3; the head from the start.
    assert not torch.equal(after_1["models.model.linear_2.weight"], fresh["linear_2.weight"])
    assert torch.equal(after_1["models.model.linear_1.weight"], fresh["linear_1.weight"])
    assert not torch.equal(after_2["models.model.linear_1.weight"], fresh["linear_1.weight"])
    assert torch.equal(after_2["models.model.linear.weight"], fresh["linear.weight"])
    assert not torch.equal(final["models.model.linear.weight"], fresh["linear.weight"])
    # The optimizer holds all six tensors from the start, with state only for those that have trained.
    state = json.loads((killed / "checkpoints" / "last.json").read_text())["optimizers"]["model"]
    assert sum(len(g["params"]) for g in state["param_groups"]) == 6


# ---- LoRA -----------------------------------------------------------------------------------------------------

@pytest.mark.long  # importing peft (and transformers with it) takes seconds
def test_lora_equals_peft_on_linear_layers_and_attention_projections_and_merges_exactly() -> None:
    import torch
    from peft import LoraConfig, inject_adapter_in_model
    from torch import nn

    from udlc.compiler.pipeline import resolve_text
    from udlc.compiler.lower import lower
    from udlc.layers.modules.lora import LoraLinear, adapt, merge

    torch.manual_seed(0)
    g = resolve_text(yaml.safe_dump({**DIGITS_MLP, "model": {"input": {"shape": ["T", 8]}, "layers": [
        {"multihead_attention": {"num_heads": 2}}, {"linear": 6}]}})).graph
    base = lower(g, seed=1)
    ours = copy.deepcopy(base)
    assert adapt(ours, ["multihead_attention", "linear"], rank=3, alpha=6.0, dropout=0.0) == 5
    theirs = inject_adapter_in_model(
        LoraConfig(r=3, lora_alpha=6, lora_dropout=0.0,
                   target_modules=r"(multihead_attention\.(q|k|v|out))|linear"), copy.deepcopy(base))
    for name, module in ours.named_modules():
        if isinstance(module, LoraLinear):
            peft_layer = theirs.get_submodule(name)
            with torch.no_grad():  # B at zero would compare only the bases: give both the same random B and A
                module.lora_B.normal_()
                peft_layer.lora_B["default"].weight.copy_(module.lora_B)
                peft_layer.lora_A["default"].weight.copy_(module.lora_A)
    x = torch.randn(4, 5, 8)
    with torch.no_grad():
        expected, got = theirs.eval()(x), ours.eval()(x)
        assert not torch.allclose(got, base.eval()(x), atol=1e-3)  # the adapters do something
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
        merged = merge(ours)
        assert not any(isinstance(m, LoraLinear) for m in merged.modules())
        assert all(type(m) is nn.Linear for n, m in merged.named_modules() if n.endswith((".q", ".out", "linear")))
        torch.testing.assert_close(merged(x), expected, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def lora_runs(tmp_path_factory) -> dict[str, Path]:
    """A plain run (the base), then LoRA on it with --init-from: straight, and stopped after epoch 1 and
    resumed."""
    import torch

    from udlc.trainer.run import resume_run, train_spec

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("lora")
    base = root / "base.yaml"
    base.write_text(spec_text(train={"epochs": 1, "batch_size": 128}))
    base_run = train_spec(compile_spec(base), out=root / "base", quiet=True)
    lora = root / "lora.yaml"
    lora.write_text(spec_text(
        model={"input": [64], "layers": [{"linear": 32}, "relu", {"dropout": 0.1}, {"linear": 16}, "relu",
                                          {"linear": 10}]},
        optimizer={"type": "adamw", "lr": 0.01},
        lora={"rank": 2, "alpha": 4, "dropout": 0.1, "targets": ["linear", "linear_1"], "also_train": ["linear_2"]},
        train={"epochs": 2, "batch_size": 128, "deterministic": True, "checkpoint_seconds": 0}))
    straight = train_spec(compile_spec(lora), out=root / "straight", quiet=True, init_from=base_run)

    def kill(row: dict) -> None:
        raise Killed

    with pytest.raises(Killed):
        train_spec(compile_spec(lora), out=root / "killed", quiet=True, init_from=base_run, on_epoch=kill)
    (killed,) = (root / "killed").glob("*/*")
    resume_run(killed, quiet=True)
    return {"base": base_run, "straight": straight, "killed": killed, "spec": lora}


def test_lora_checkpoints_hold_the_adapters_and_record_the_base(lora_runs: dict[str, Path]) -> None:
    import torch
    from safetensors.torch import load_file

    tensors = load_file(str(lora_runs["straight"] / "checkpoints" / "last.safetensors"))
    models = sorted(k for k in tensors if k.startswith("models."))
    assert models == ["models.model.linear.lora_A", "models.model.linear.lora_B", "models.model.linear_1.lora_A",
                      "models.model.linear_1.lora_B", "models.model.linear_2.bias", "models.model.linear_2.weight"]
    state = json.loads((lora_runs["straight"] / "checkpoints" / "last.json").read_text())
    info = json.loads((lora_runs["straight"] / "run.json").read_text())
    assert state["base"] == {"init_from": str(lora_runs["base"]), "init_sha256": info["init_sha256"], "seed": 0}
    assert len(info["init_sha256"]) == 64
    assert sum(len(g["params"]) for g in state["optimizers"]["model"]["param_groups"]) == 6  # adapters + head
    # The base trained nothing: the export (below) rebuilds it from the base run.
    base = load_file(str(lora_runs["base"] / "checkpoints" / "last.safetensors"))
    assert not torch.equal(tensors["models.model.linear_2.weight"], base["models.model.linear_2.weight"])


def test_lora_resume_loads_the_base_then_the_adapters_exactly(lora_runs: dict[str, Path]) -> None:
    from safetensors.torch import load_file

    for name in ("best", "last"):
        a, b = (load_file(str(lora_runs[r] / "checkpoints" / f"{name}.safetensors")) for r in ("straight", "killed"))
        assert a.keys() == b.keys() and [k for k in a if not a[k].equal(b[k])] == [], name
    results = [json.loads((lora_runs[r] / "results.json").read_text()) for r in ("straight", "killed")]
    assert results[0] == results[1]


@pytest.mark.long  # an ONNX export through the parity gate: seconds
def test_lora_export_is_one_plain_file_of_the_merged_weights(lora_runs: dict[str, Path], one_torch_thread) -> None:
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch

    from udlc.compiler.lower import lower
    from udlc.exporter.onnx import export_run
    from udlc.objectives.finetune import put_adapters
    from udlc.runs import RunFolder, checkpoint

    path = export_run(lora_runs["straight"])  # the parity gate against the merged torch network
    names = [i.name for i in onnx.load(str(path)).graph.initializer]
    assert not [n for n in names if "lora" in n] and "network.linear.weight" in names
    # The unmerged network as training left it: the base run's weights, the adapters over them.
    compiled = RunFolder.open(lora_runs["straight"]).compiled()
    model = lower(compiled.graph, seed=0)
    put_adapters(model, compiled.spec, compiled.graph, 0)
    model.load_state_dict(checkpoint.load(lora_runs["base"] / "checkpoints" / "last")["models"]["model"], strict=False)
    checkpoint.load_models({"model": model}, lora_runs["straight"] / "checkpoints" / "last")
    x = np.random.default_rng(0).normal(size=(5, 64)).astype(np.float32)
    info = json.loads((lora_runs["straight"] / "run.json").read_text())["normalization"]
    with torch.no_grad():
        standardized = (torch.from_numpy(x) - torch.tensor(info["shift"])) / torch.tensor(info["scale"])
        logits = model.eval()(standardized).numpy()
    session = ort.InferenceSession(str(path))
    out = dict(zip([o.name for o in session.get_outputs()], session.run(None, {session.get_inputs()[0].name: x})))
    np.testing.assert_allclose(out["logits"], logits, rtol=1e-4, atol=1e-4)


# ---- summary ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sections", [
    {"train": {"freeze": ["linear_1"]}},
    {"lora": {"rank": 3, "targets": ["*"], "also_train": ["linear"]}},
    {"model": {"input": {"shape": ["T", 8]}, "layers": [
        {"linear": {"out_features": 6, "id": "proj"}},
        {"cross_attention": {"num_heads": 2, "num_kv_heads": 1, "from": ["proj", "x"]}},
        {"linear": 4}, "relu",
        {"linear": {"out_features": 6, "bias": False}}]}, "lora": {"rank": 2}},
], ids=["freeze", "lora", "lora-attention"])
def test_summary_counts_trainable_and_frozen_as_torch_does(sections: dict, capsys) -> None:
    from udlc.compiler.lower import lower
    from udlc.compiler.pipeline import resolve_text
    from udlc.objectives.finetune import put_adapters, set_trainable
    from udlc.summary import print_summary

    compiled = resolve_text(spec_text(**sections), "t.yaml")  # the networks alone (no task: a sequence model here)
    model = lower(compiled.graph, seed=0)  # as udlc.trainer.run.build_models builds it
    put_adapters(model, compiled.spec, compiled.graph, 0)
    set_trainable(model, compiled.spec, compiled.graph, epoch=1)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    assert trainable and frozen
    print_summary(compiled)
    assert f"trainable: {trainable:,} · frozen: {frozen:,}" in capsys.readouterr().out


# ---- check ------------------------------------------------------------------------------------------------------

def test_check_refuses_what_fine_tuning_cannot_act_on_at_its_line() -> None:
    text = spec_text(optimizer={"type": "adam", "groups": [{"match": ["linear", "head*"], "lr": 0.1}]},
                     train={"epochs": 3, "freeze": ["linear"], "unfreeze": [{"epoch": 2, "layers": ["linear_1"]},
                                                                             {"epoch": 7, "layers": ["linear"]}]})
    errors = {e.path: e for e in errors_of(text)}
    assert set(errors) == {"optimizer.groups[0].match[1]", "train.unfreeze[0].layers[0]", "train.unfreeze[1].epoch"}
    assert "'head*' names no layer with weights" in errors["optimizer.groups[0].match[1]"].message
    group = errors["optimizer.groups[0].match[1]"]
    assert (group.span.line, group.span.col) == at(text, "head*")
    assert "train.freeze froze" in errors["train.unfreeze[0].layers[0]"].message
    assert "the frozen layers are linear" in errors["train.unfreeze[0].layers[0]"].hint
    assert "comes after the last" in errors["train.unfreeze[1].epoch"].message
    assert errors["train.unfreeze[1].epoch"].span.line == at(text, "epoch: 7")[0]


def test_check_refuses_a_bad_lora_at_its_line() -> None:
    text = spec_text(lora={"rank": 0, "targets": ["linear"]})
    (error,) = errors_of(text)
    assert error.path == "lora.rank" and "must be > 0 (got 0)" in error.message
    assert error.span.line == at(text, "rank: 0")[0]

    text = spec_text(lora={"targets": ["lin", "linear_*", "encoder_*"], "also_train": ["head"]})
    errors = {e.path: e for e in errors_of(text)}
    assert set(errors) == {"lora.targets[0]", "lora.targets[2]", "lora.also_train[0]"}
    assert "'lin' names no linear or attention layer" in errors["lora.targets[0]"].message
    assert errors["lora.targets[0]"].hint == "did you mean 'linear'?"
    assert "can adapt are linear, linear_1, linear_2" in errors["lora.targets[2]"].hint
    assert errors["lora.targets[0]"].span.line == at(text, "- lin\n")[0]

    convnet = yaml.safe_dump({**DIGITS_MLP, "model": {"input": [1, 8, 8], "layers": [
        {"conv2d": {"out_channels": 10, "kernel_size": 8}}, "flatten"]}, "lora": {"rank": 2}}, sort_keys=False)
    (error,) = errors_of(convnet)
    assert "this spec has none" in error.message and error.span.line == at(convnet, "lora:")[0]


def test_lora_refuses_a_base_whose_file_changed(lora_runs: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    from safetensors.torch import load_file, save_file

    from udlc.errors import UdlcError
    from udlc.exporter.onnx import export_run

    base, run = tmp_path / "base", tmp_path / "run"
    shutil.copytree(lora_runs["base"], base)
    shutil.copytree(lora_runs["straight"], run)
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "init_from": str(base)}))
    for name in ("best", "last"):  # other weights under the same names: what a re-trained base would leave
        f = base / "checkpoints" / f"{name}.safetensors"
        tensors = load_file(str(f))
        tensors["models.model.linear.weight"] = tensors["models.model.linear.weight"] + 1
        save_file(tensors, str(f), metadata={"udlc_state": json.dumps(json.loads(
            (base / "checkpoints" / f"{name}.json").read_text()))})
    with pytest.raises(UdlcError, match="not the weights this run's adapters were trained on"):
        export_run(run)


@pytest.mark.long  # a second LoRA run: the default tier covers the base from --init-from
def test_lora_on_a_fresh_base_records_its_seed_and_exports(tmp_path: Path, one_torch_thread) -> None:
    from udlc.exporter.onnx import export_run
    from udlc.trainer.run import train_spec

    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text(seed=5, lora={"rank": 4}, train={"epochs": 1, "batch_size": 128}))
    run = train_spec(compile_spec(spec), out=tmp_path, quiet=True)
    state = json.loads((run / "checkpoints" / "last.json").read_text())
    assert state["base"] == {"init_from": None, "init_sha256": None, "seed": 5}
    export_run(run)  # the parity gate: the seed's base rebuilt, the adapters merged
