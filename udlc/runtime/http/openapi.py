"""`GET /openapi.json` and `GET /docs`: an OpenAPI 3.1 document of what this server answers, built once from the
served files' metadata (Starlette, unlike FastAPI, writes none), and a page that shows it.

Per model: its friendly route with the body its kind reads — rows whose properties are the file's feature columns
(a categorical column's categories as an enum, a column trained with `missing: mean` nullable), or values by
position where the file names no columns, a CSV body, texts, a picture or sound file upload, a prompt and
generate's options bounded as this server bounds them, sample's options, a graph — what it answers (classes with
their probabilities, values named as predict names them, …) and an example request made from the metadata; and
the Open Inference Protocol's routes with the graph's own inputs (names, datatypes, shapes).
udlc.runtime.http.docs shows it as a page (`/docs`).

`form_of` and `columns` say what a model's friendly route reads: the page at `/` builds its forms from them too.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from udlc.runtime.generate import Asked
from udlc.runtime.audio import is_sound_model
from udlc.runtime.http import oip
from udlc.runtime.http.friendly import CSV, MAX_STEPS, NPY, PNG
from udlc.runtime.http.generating import EVENTS, MAX_BEAM
from udlc.runtime.http.limits import Limits
from udlc.runtime.http.models import Served
from udlc.runtime.pictures import is_picture_model
from udlc.tasks.served import CLASSES, DENOISER, EDGE_PROBABILITIES, NEXT_TOKEN, NODE_CLASSES, TEXT_CLASSES

JSON = "application/json"
_NUMBER = {"type": ["number", "null"]}  # an answer's number: null where the model's value is NaN or infinite
_ERROR = {"$ref": "#/components/schemas/Error"}


@dataclass(frozen=True)
class Column:
    name: str
    categories: list[str] | None  # a categorical column's categories; None for a number
    fillable: bool  # trained with data.missing: mean — an empty cell (null) is filled as training filled it


def form_of(model: Served) -> str | None:
    """What the model's friendly route reads: "rows" (keyed by column), "values" (by position: the file names no
    columns), "picture", "sound", "texts", "prompt", "draws" or "graph"; None where this server mounts no friendly
    route."""
    if model.route is None:
        return None
    if model.kind.takes != "samples":
        return model.kind.takes
    if is_picture_model(model.file.meta):
        return "picture"
    if is_sound_model(model.file.meta):
        return "sound"
    return "rows" if model.reader.columns else "values"


def columns(model: Served) -> list[Column]:
    """The columns a row of the model holds, in the file's order."""
    reader = model.reader
    return [Column(c, reader.categories.get(c), c in reader.fill_values) for c in reader.columns or []]


def document(models: dict[str, Served], limits: Limits) -> dict[str, Any]:
    """The OpenAPI 3.1 document of a server of `models` under `limits`."""
    ready = {"type": "object", "properties": {"live": {"const": True}, "ready": {"const": True}}}
    paths: dict[str, Any] = {
        "/v2/health/live": {"get": _op("The server is live (Open Inference Protocol)", None, {JSON: ready})},
        "/v2/health/ready": {"get": _op("The server is ready", None, {JSON: ready})},
        "/v1/models": {"get": _op("The models served here and their routes", None, {JSON: _object(models={
            "type": "array", "items": _object(name={"type": "string"}, file={"type": "string"},
                                              serves={"type": "string"},
                                              routes={"type": "array", "items": {"type": "string"}})})})}}
    for model in models.values():
        name, form = quote(model.name, safe=""), form_of(model)
        if form is not None:
            paths[f"{model.kind.route}/{name}"] = {"post": _friendly(model, form, limits)}
        base = f"/v2/models/{name}"
        paths[base] = {"get": _op(f"{model.name}: its inputs and outputs", None, {JSON: _metadata(model)})}
        paths[f"{base}/ready"] = {"get": _op(f"{model.name} is ready", None, {JSON: _object(
            name={"const": model.name}, ready={"const": True})})}
        paths[f"{base}/infer"] = {"post": _infer(model, limits)}
    return {"openapi": "3.1.0", "servers": [{"url": "/"}],
            "info": {"title": "udlc serve", "version": "1",
                     "description": f"{len(models)} model(s): {', '.join(models)}. Every bad request is answered "
                                    "4xx with {\"error\": message}, the message `udlc predict` gives."},
            "paths": paths, "components": {"schemas": {"Error": _object(error={"type": "string"}),
                                                       **_EVENTS}}}


def _file_body(field: str, media: str, example: str) -> dict[str, Any]:
    """A file sent as the body (Content-Type `media`) or as a form's one file under `field`."""
    upload = {"type": "string", "contentMediaType": media}
    return {"multipart/form-data": {"schema": _object(**{field: upload}), "example": {field: example}},
            media: {"schema": upload}}


def _object(**properties: Any) -> dict[str, Any]:
    """An object schema holding every one of `properties`."""
    return {"type": "object", "properties": properties, "required": list(properties)}


def _op(summary: str, body: dict[str, Any] | None, answers: dict[str, Any], description: str = "",
        parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An operation: its request body's content by media type (each {"schema", "example"}) and its answer's."""
    op: dict[str, Any] = {"summary": summary, **({"description": description} if description else {})}
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = {"required": True, "content": body}
    op["responses"] = {"200": {"description": "answered", "content": {m: {"schema": s} for m, s in answers.items()}},
                       "4XX": {"description": "a bad request: what is wrong, as `udlc predict` says it",
                               "content": {JSON: {"schema": _ERROR}}}}
    return op


def _classes(classes: list[str] | None) -> dict[str, Any]:
    """A classifier's answer: its class and every class's probability."""
    if not classes:  # a file that names no classes: they are numbered
        return _object(prediction={"type": "string"},
                       probabilities={"type": "object", "additionalProperties": _NUMBER})
    return _object(prediction={"enum": list(classes)}, probabilities={
        "type": "object", "properties": {c: _NUMBER for c in classes}, "required": list(classes),
        "additionalProperties": False})


def _answers(model: Served, picture: bool = False) -> dict[str, Any]:
    """{"answers": [one per row]}, each named as friendly.answer names it."""
    reader = model.reader
    if model.kind.name == EDGE_PROBABILITIES:
        one = _object(source={"type": "integer"}, target={"type": "integer"}, probability=_NUMBER)
    elif model.kind.name in (CLASSES, TEXT_CLASSES, NODE_CLASSES):
        one = _classes(reader.classes)
    else:  # values in the target's units: named as predict's CSV names them
        dims = next(o.shape for o in model.file.session.get_outputs() if o.name == reader.answer)[1:]
        width = math.prod(dims) if all(isinstance(d, int) for d in dims) else None
        names = [reader.target or "y"] if width == 1 else [f"y{i}" for i in range(width or 0)]
        one = _object(**dict.fromkeys(names, _NUMBER)) if names else {"type": "object", "additionalProperties": _NUMBER}
    if picture:
        one = {**one, "properties": {"file": {"type": "string"}, **one["properties"]},
               "required": ["file", *one["required"]]}
    return _object(answers={"type": "array", "items": one})


def _friendly(model: Served, form: str, limits: Limits) -> dict[str, Any]:
    summary, reader = f"{model.name}: {model.kind.description}", model.reader
    rows = {"type": "array", "minItems": 1, "maxItems": limits.rows}
    csv_answer = {CSV: {"type": "string", "description": "udlc predict's CSV (ask with Accept: text/csv)"}}
    if form in ("rows", "values"):
        cols = columns(model)
        if cols:
            cells = {c.name: ({"enum": c.categories + [None] * c.fillable} if c.categories is not None else
                              {"type": ["number", "null"] if c.fillable else "number"}) for c in cols}
            row = {**_object(**cells), "description": "a row keyed by column; null: empty, filled with training's "
                                                      "mean where training filled it"}
            example = {c.name: c.categories[0] if c.categories else 0 for c in cols}
            csv = ",".join(_csv_cell(c.name) for c in cols) + "\n" + ",".join(_csv_cell(v) for v in example.values())
        else:
            row = {"type": "array", "minItems": reader.per_sample, "maxItems": reader.per_sample,
                   "items": {"type": "number"}, "description": "the values by position, as a CSV row gives them"}
            example, csv = [0] * reader.per_sample, ",".join(["0"] * reader.per_sample)
        body = {JSON: {"schema": _object(rows={**rows, "items": row}), "example": {"rows": [example]}},
                CSV: {"schema": {"type": "string"}, "example": csv + "\n"}}
        idp = [{"name": "id", "in": "query", "required": False, "schema": {"type": "string"},
                "description": "a column whose cells name the answers, as `udlc predict --id` (a CSV body)"}]
        return _op(summary, body, {JSON: _answers(model), **csv_answer}, "Rows as JSON or a CSV body.", idp)
    if form == "picture":
        size = json.loads(model.file.meta["pictures"])
        body = _file_body("picture", "image/*", "picture.png")
        return _op(summary, body, {JSON: _answers(model, picture=True), **csv_answer},
                   f"A picture, decoded and resized to {size['size'][0]}×{size['size'][1]} ({size['channels']} "
                   f"channel(s)) as `udlc predict` does; at most {limits.pixels:,} pixels.")
    if form == "sound":
        clip = json.loads(model.file.meta["audio"])
        body = _file_body("sound", "audio/*", "clip.wav")
        return _op(summary, body, {JSON: _answers(model, picture=True), **csv_answer},
                   f"A sound file (WAV, FLAC, OGG), decoded as `udlc predict` does: mixed to mono, resampled to "
                   f"{clip['sample_rate']} Hz and cut or padded ({clip['crop']}) to {clip['duration']:g} s; at most "
                   f"{limits.body_bytes // 2:,} values (frames × channels) decoded.")
    if form == "texts":
        text = {"type": "string", "minLength": 1}
        if len(reader.columns) == 2:  # sentence pairs
            pair = {"type": "array", "items": text, "minItems": 2, "maxItems": 2}
            body = {JSON: {"schema": _object(texts={**rows, "items": pair}),
                           "example": {"texts": [["a first text", "a second text"]]}}}
            said = f"Pairs of texts: the columns '{reader.columns[0]}' and '{reader.columns[1]}'."
        else:
            body = {JSON: {"schema": _object(texts={**rows, "items": text}), "example": {"texts": ["an example text"]}}}
            said = f"Texts of the column '{reader.column}'."
        return _op(summary, body, {JSON: _answers(model), **csv_answer}, said)
    if form == "prompt":
        return _generate(model, summary, limits)
    if form == "draws":
        options: dict[str, Any] = {"n": {"type": "integer", "minimum": 1, "maximum": limits.rows, "default": 64},
                                   "seed": {"type": "integer", "minimum": 0, "default": 0}}
        if reader.classes:
            options["class"] = {"type": ["integer", "null"], "minimum": 0, "maximum": reader.classes - 1,
                                "description": "the class to draw; none: each class in turn"}
        if model.kind.name == DENOISER:
            options["steps"] = {"type": "integer", "minimum": 1, "maximum": MAX_STEPS}
            options["sampler"] = {"enum": ["ddpm", "ddim"]}
        body = {JSON: {"schema": {"type": "object", "properties": options, "additionalProperties": False},
                       "example": {"n": 4, "seed": 0}}}
        binary = {"type": "string", "contentMediaType": NPY}
        return _op(summary, body, {NPY: binary, PNG: {"type": "string", "contentMediaType": PNG}},
                   "Samples as `udlc sample` draws them: a .npy file, or a PNG with Accept: image/png.")
    # a graph: its arrays as JSON lists (or the .npz file predict reads, as the body or a form's file)
    takes = {i.name for i in model.file.session.get_inputs()}
    features = next((i.shape[-1] for i in model.file.session.get_inputs() if i.name == "x"), 1)
    features = features if isinstance(features, int) else 1
    node = {"type": "array", "minItems": features, "maxItems": features, "items": {"type": "number"}}
    arrays = {"x": {"type": "array", "maxItems": limits.nodes, "items": node},
              "edge_index": {"type": "array", "minItems": 2, "maxItems": 2,
                             "items": {"type": "array", "maxItems": limits.edges, "items": {"type": "integer"}}}}
    example: dict[str, Any] = {"x": [[0.0] * features, [1.0] * features], "edge_index": [[0, 1], [1, 0]]}
    for key in ("batch", "edge_weight"):
        if key in takes:
            arrays[key] = {"type": "array", "items": {"type": "integer" if key == "batch" else "number"}}
            example[key] = [0, 0] if key == "batch" else [1.0, 1.0]
    if model.kind.name == EDGE_PROBABILITIES:
        arrays["pairs"], example["pairs"] = arrays["edge_index"], [[0], [1]]
    schema = {**_object(**arrays), "additionalProperties": False}
    npz = {"type": "string", "contentMediaType": "application/zip"}
    body = {JSON: {"schema": schema, "example": example}, "application/octet-stream": {"schema": npz},
            "multipart/form-data": {"schema": _object(graph=npz), "example": {"graph": "graph.npz"}}}
    return _op(summary, body, {JSON: _answers(model), **csv_answer},
               f"A graph: at most {limits.nodes:,} nodes and {limits.edges:,} edges.")


def _generate(model: Served, summary: str, limits: Limits) -> dict[str, Any]:
    default = Asked()
    options = {"prompt": {"type": "string", "maxLength": limits.prompt_chars},
               "max_new_tokens": {"type": "integer", "minimum": 1, "maximum": limits.new_tokens,
                                  "default": min(default.max_new_tokens, limits.new_tokens)},
               "temperature": {"type": "number", "minimum": 0, "default": default.temperature,
                               "description": "0: greedy"},
               "top_k": {"type": ["integer", "null"], "minimum": 1},
               "seed": {"type": "integer", "minimum": 0, "maximum": 2 ** 64 - 1, "default": default.seed},
               "beam": {"type": "integer", "minimum": 1, "maximum": MAX_BEAM, "default": default.beam}}
    schema = {"type": "object", "properties": options, "required": ["prompt"], "additionalProperties": False}
    body = {JSON: {"schema": schema, "example": {"prompt": _prompt(model), "max_new_tokens": 8, "temperature": 0}}}
    answers: dict[str, Any] = {JSON: _object(text={"type": "string"})}
    parameters = None
    if model.kind.name == NEXT_TOKEN:  # a language model streams its tokens unless asked for JSON
        answers = {EVENTS: {"type": "string", "description": "server-sent events: one TokenEvent per new token, "
                            "then `event: done` (DoneEvent), or `event: error` (ErrorEvent)"}, **answers}
        parameters = [{"name": "stream", "in": "query", "required": False, "schema": {"enum": ["true", "false"]},
                       "description": "false: the whole text at once, as JSON (or ask with Accept: application/json)"}]
    return _op(summary, body, answers, "`udlc generate` over HTTP, its options bounded as this server bounds them.",
               parameters)


_EVENTS = {"TokenEvent": _object(text={"type": "string"}),
           "DoneEvent": _object(text={"type": "string"}, tokens={"type": "integer"}, seconds={"type": "number"}),
           "ErrorEvent": _object(error={"type": "string"})}


def _prompt(model: Served) -> str:
    """A prompt the model can read: made of its vocabulary's characters where it has one."""
    meta = model.file.meta
    if "vocabulary" in meta:  # an encoder–decoder's or a token labeller's: after its three special tokens
        return "".join(json.loads(meta["vocabulary"])[3:8])
    tokenizer = json.loads(meta.get("tokenizer") or "{}")
    return "".join(tokenizer["chars"][:5]) if tokenizer.get("type") == "char" else "The "


def _csv_cell(value: Any) -> str:
    text = str(value)
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n\r') else text


_SCALARS = {"FP": "number", "IN": "integer", "UI": "integer", "BO": "boolean", "BY": "string"}


def _metadata(model: Served) -> dict[str, Any]:
    """GET /v2/models/{name}: the graph's inputs and outputs, as they are (the models do not change)."""
    meta = oip.metadata(model)
    return _object(name={"const": model.name}, versions={"type": "array", "items": {"type": "string"}},
                   platform={"type": "string"}, inputs={"const": meta["inputs"]}, outputs={"const": meta["outputs"]})


def _infer(model: Served, limits: Limits) -> dict[str, Any]:
    """POST /v2/models/{name}/infer: one tensor per input of the graph, each with its own name, datatype and shape
    (-1 in the metadata: any size, the first one at most --max-rows)."""
    meta, tensors, example = oip.metadata(model), [], []
    for t in meta["inputs"]:
        scalar = _SCALARS.get(t["datatype"][:2], "number")
        dims = [{"type": "integer", "minimum": 1, **({"maximum": limits.rows} if i == 0 else {})} if d == -1 else
                {"const": d} for i, d in enumerate(t["shape"])]
        shape = [1 if d == -1 else d for d in t["shape"]]
        tensors.append(_object(name={"const": t["name"]}, datatype={"const": t["datatype"]},
                               shape={"type": "array", "prefixItems": dims, "minItems": len(dims),
                                      "maxItems": len(dims), "items": False},
                               data={"type": "array", "items": {"type": [scalar, "array"]},
                                     "description": "the values in row-major order, flat or nested"}))
        zero = {"number": 0.0, "integer": 0, "boolean": True, "string": ""}[scalar]
        example.append({**t, "shape": shape, "data": [zero] * math.prod(shape)})
    request = {"type": "object", "required": ["inputs"], "properties": {
        "id": {"type": "string"},
        "inputs": {"type": "array", "minItems": len(tensors), "maxItems": len(tensors), "items": {"oneOf": tensors}},
        "outputs": {"type": "array", "items": _object(name={"enum": [o["name"] for o in meta["outputs"]]})}}}
    out = _object(name={"enum": [o["name"] for o in meta["outputs"]]}, datatype={"type": "string"},
                  shape={"type": "array", "items": {"type": "integer"}}, data={"type": "array"})
    answer = {"type": "object", "required": ["model_name", "model_version", "outputs"], "properties": {
        "model_name": {"const": model.name}, "model_version": {"type": "string"}, "id": {"type": "string"},
        "outputs": {"type": "array", "items": out}}}
    return _op(f"{model.name}: inference on JSON tensors (Open Inference Protocol)",
               {JSON: {"schema": request, "example": {"inputs": example}}}, {JSON: answer})
