"""Checkpoints: safetensors for every tensor, JSON for everything else; never pickle.

A checkpoint `name` is `name.safetensors`, whose metadata also holds the non-tensor state, so one
atomic rename replaces it whole (a run killed mid-write keeps its previous checkpoint), and
`name.json` beside it, the same state for people and tools to read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from udlc.errors import UdlcError

_TENSOR = "__tensor__"
_INT_KEYS = "__int_keys__"


def flatten(obj: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    """Split a nested state (optimizer, scheduler, RNG) into JSON-able data and named tensors."""
    if isinstance(obj, torch.Tensor):
        key = prefix or "_"
        tensors[key] = obj.detach().to("cpu").clone().contiguous()
        return {_TENSOR: key}
    if isinstance(obj, dict):
        out = {str(k): flatten(v, tensors, f"{prefix}.{k}" if prefix else str(k)) for k, v in obj.items()}
        if obj and all(isinstance(k, int) for k in obj):
            return {_INT_KEYS: out}  # optimizer state is keyed by parameter index
        return out
    if isinstance(obj, (list, tuple)):
        return [flatten(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
    return obj


def unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {_TENSOR}:
            return tensors[obj[_TENSOR]]
        if set(obj) == {_INT_KEYS}:
            return {int(k): unflatten(v, tensors) for k, v in obj[_INT_KEYS].items()}
        return {k: unflatten(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unflatten(v, tensors) for v in obj]
    return obj


def save(path: Path, state: dict[str, Any]) -> None:
    """Save `state` (nested dicts of tensors and plain values) as path.safetensors + path.json."""
    tensors: dict[str, torch.Tensor] = {}
    _write(path, flatten(state, tensors, ""), tensors)


def _write(path: Path, data: Any, tensors: dict[str, torch.Tensor]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    st, js = path.with_suffix(".safetensors"), path.with_suffix(".json")
    text = json.dumps(data, indent=1)
    _atomic(st, lambda tmp: save_file(tensors, str(tmp), metadata={"udlc_state": text}), sync=True)
    _atomic(js, lambda tmp: tmp.write_text(text), sync=False)  # a copy for readers: no need to sync


def load(path: Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    st = path.with_suffix(".safetensors")
    if not st.is_file():
        raise UdlcError(f"no checkpoint at {st}")
    try:
        with safe_open(str(st), framework="pt") as f:
            data = json.loads((f.metadata() or {})["udlc_state"])
        tensors = load_file(str(st), device=str(device))
    except Exception as e:  # a truncated or foreign file
        raise UdlcError(f"cannot read checkpoint {st}: {e}") from None
    return unflatten(data, tensors)


def load_models(models: dict[str, torch.nn.Module], path: Path, device: str | torch.device = "cpu") -> None:
    """Load each network's weights from a checkpoint's `models` entry. One with a `base` (LoRA's) holds the
    adapters only: they go over the base weights the models hold already."""
    state = load(path, device)
    saved = state["models"]
    for name, model in models.items():
        model.load_state_dict({**model.state_dict(), **saved[name]} if "base" in state else saved[name])


def _atomic(target: Path, write, sync: bool) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    write(tmp)
    if sync:  # on disk before the rename, so even a power cut leaves the old or the new file whole
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
    os.replace(tmp, target)
