"""The Open Inference Protocol (v2), the REST protocol KServe, Triton and Seldon MLServer speak: a model's metadata
from its ONNX session (names, datatypes, shapes with -1 for a dynamic axis) and inference on JSON tensors.

An infer request names each of the graph's inputs once, with its datatype, shape and data (flat in row-major
order, or nested); every mismatch is a 422 naming the input and what the graph takes. A float input holding
NaN, inf or values beyond float32 is refused as `udlc predict` refuses it. The graph runs on the raw values:
it standardizes its inputs itself, so a client sends what it would put in a CSV.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from udlc.runtime.http.limits import HttpError, Limits, too_large
from udlc.runtime.http.models import Served

# onnxruntime's type names and the protocol's datatypes, both ways
DATATYPES = {"tensor(float)": "FP32", "tensor(double)": "FP64", "tensor(float16)": "FP16",
             "tensor(int64)": "INT64", "tensor(int32)": "INT32", "tensor(int16)": "INT16", "tensor(int8)": "INT8",
             "tensor(uint8)": "UINT8", "tensor(bool)": "BOOL", "tensor(string)": "BYTES"}
NUMPY = {"FP32": np.float32, "FP64": np.float64, "FP16": np.float16, "INT64": np.int64, "INT32": np.int32,
         "INT16": np.int16, "INT8": np.int8, "UINT8": np.uint8, "BOOL": np.bool_}
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_END = object()


def _tensor(arg: Any) -> dict[str, Any]:
    return {"name": arg.name, "datatype": DATATYPES.get(arg.type, arg.type),
            "shape": [d if isinstance(d, int) else -1 for d in arg.shape]}


def metadata(model: Served) -> dict[str, Any]:
    """GET /v2/models/{name}: its inputs and outputs as the session declares them."""
    session = model.file.session
    return {"name": model.name, "versions": ["1"], "platform": "onnxruntime_onnx",
            "inputs": [_tensor(i) for i in session.get_inputs()],
            "outputs": [_tensor(o) for o in session.get_outputs()]}


def infer_feed(model: Served, request: Any, limits: Limits) -> tuple[dict[str, np.ndarray], list[str]]:
    """The session's feed and the outputs asked for, from an infer request's JSON object."""
    session = model.file.session
    declared = {i.name: i for i in session.get_inputs()}
    given = request.get("inputs")
    if not isinstance(given, list) or not given:
        raise HttpError(400, f"an infer request holds `inputs`: a list of tensors, one for each of "
                             f"{', '.join(declared)} ({{name, datatype, shape, data}})")
    feed: dict[str, np.ndarray] = {}
    for tensor in given:
        name, array = _read_tensor(tensor, declared, limits)
        if name in feed:
            raise HttpError(422, f"input '{name}' is given twice — give each input once")
        feed[name] = array
    missing = [name for name in declared if name not in feed]
    if missing:
        raise HttpError(422, f"no input '{missing[0]}' — the model takes {', '.join(declared)}")
    sizes = {a.shape[0] for a in feed.values() if a.ndim}
    if model.kind.batches and len(sizes) > 1:
        raise HttpError(422, f"the inputs hold different numbers of samples ({sorted(sizes)}) in their first axis")
    return feed, _outputs(request.get("outputs"), [o.name for o in session.get_outputs()])


def _read_tensor(tensor: Any, declared: dict[str, Any], limits: Limits) -> tuple[str, np.ndarray]:
    if not isinstance(tensor, dict):
        raise HttpError(400, "each of `inputs` is an object {name, datatype, shape, data}")
    name = tensor.get("name")
    if name not in declared:
        raise HttpError(422, f"no input named {str(name)[:60]!r} — the model takes {', '.join(declared)}")
    arg = declared[name]
    datatype = DATATYPES.get(arg.type, arg.type)
    if tensor.get("datatype") != datatype:
        raise HttpError(422, f"input '{name}' is {datatype}, not {str(tensor.get('datatype'))[:20]!r}")
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise HttpError(422, f"input '{name}': its shape is a list of sizes (whole numbers), not {shape!r:.60}")
    want = [d if isinstance(d, int) else -1 for d in arg.shape]
    if len(shape) != len(want) or any(w != -1 and w != d for w, d in zip(want, shape)):
        raise HttpError(422, f"input '{name}' has shape {want} (-1: any size), not {shape}")
    if 0 in shape:
        raise HttpError(422, f"input '{name}' holds no samples (shape {shape})")
    if shape and shape[0] > limits.rows:
        raise too_large(f"input '{name}' ({shape[0]:,} samples)", limits.rows, "samples", "--max-rows")
    values = _flat(tensor.get("data"), name, math.prod(shape))
    array = _typed(values, datatype, name)
    return name, array.reshape(shape)


def _flat(data: Any, name: str, size: int) -> list[Any]:
    """The tensor's values in row-major order, from a flat or a nested list."""
    if not isinstance(data, list):
        raise HttpError(422, f"input '{name}': `data` is a list of its values in row-major order")
    flat: list[Any] = []
    stack = [iter(data)]
    while stack and len(flat) <= size:  # without recursion, and no further than one value past the shape's
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
        elif isinstance(item, list):
            stack.append(iter(item))
        else:
            flat.append(item)
    if len(flat) != size:
        raise HttpError(422, f"input '{name}': its shape holds {size:,} values, its data "
                             f"{'more' if len(flat) > size else f'{len(flat):,}'}")
    return flat


def _typed(values: list[Any], datatype: str, name: str) -> np.ndarray:
    if datatype not in NUMPY:
        raise HttpError(422, f"input '{name}' is {datatype}, which this server does not read from JSON")
    if datatype == "BOOL":
        ok = all(type(v) is bool for v in values)
    elif datatype.startswith("FP"):
        ok = all(type(v) in (int, float) for v in values)
    else:
        ok = all(type(v) is int for v in values)
    if not ok:
        raise HttpError(422, f"input '{name}' is {datatype}: its data holds a value of another type "
                             f"({next(_bad(values, datatype))!r:.40})")
    if datatype.startswith("FP"):
        x = np.asarray(values, np.float64)
        bad = ~(np.isfinite(x) & (np.abs(x) <= _FLOAT32_MAX))
        if bad.any():  # as udlc.runtime.predict refuses them
            raise HttpError(422, f"input '{name}' holds NaN, inf or values beyond float32 (value "
                                 f"{int(np.flatnonzero(bad)[0])}, counted from 0): predictions for them would be "
                                 "meaningless — fix or drop those samples")
        return x.astype(NUMPY[datatype])
    info = np.iinfo(NUMPY[datatype]) if datatype != "BOOL" else None
    if info is not None and values and not (info.min <= min(values) and max(values) <= info.max):
        raise HttpError(422, f"input '{name}' is {datatype}: a value is out of its range")
    return np.asarray(values, NUMPY[datatype])


def _bad(values: list[Any], datatype: str):
    for v in values:
        if datatype == "BOOL" and type(v) is not bool or datatype.startswith("FP") and type(v) not in (int, float) \
                or datatype[0] in "IU" and type(v) is not int:
            yield v


def _outputs(asked: Any, names: list[str]) -> list[str]:
    if asked is None:
        return names
    if not isinstance(asked, list) or not all(isinstance(o, dict) for o in asked):
        raise HttpError(400, "`outputs` is a list of objects {name}")
    wanted = [o.get("name") for o in asked]
    for name in wanted:
        if name not in names:
            raise HttpError(422, f"no output named {str(name)[:60]!r} — the model gives {', '.join(names)}")
    return wanted or names


def infer_answer(model: Served, request_id: Any, names: list[str], values: list[np.ndarray]) -> dict[str, Any]:
    answer: dict[str, Any] = {"model_name": model.name, "model_version": "1", "outputs": [
        {"name": name, "datatype": DATATYPES.get(f"tensor({_onnx_type(a)})", str(a.dtype)), "shape": list(a.shape),
         "data": a.ravel().tolist()} for name, a in zip(names, values)]}
    if request_id is not None:
        answer["id"] = str(request_id)
    return answer


def _onnx_type(a: np.ndarray) -> str:
    return {"float32": "float", "float64": "double"}.get(str(a.dtype), str(a.dtype))
