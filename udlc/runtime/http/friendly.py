"""The friendly routes (`POST /v1/predict/{name}`): what `udlc predict` reads from a file, sent in a request, and
the same answers — read by the same readers, so a mistake gets the message the CLI gives for it.

- rows, for a model of samples: a CSV body (Content-Type: text/csv; a header row names the columns, `?id=COLUMN`
  names the answers as `--id` does), or JSON {"rows": [{column: value, …}, …]} (rows as lists: by position).
  JSON rows are read as the CSV they make would be: in messages line 1 is the header, line 2 the first row;
- a picture, for a model trained on a folder of pictures: the file as the body (Content-Type: image/…) or as
  the one file of a multipart form (`curl -F picture=@cat.png`), decoded and resized as predict does;
- a sound file (WAV, FLAC, OGG), for a model trained on sound clips: the file as the body (Content-Type: audio/…,
  or any body that starts as one of them does) or as a form's one file (`curl -F sound=@clip.wav`), decoded as
  predict decodes it; such a model still takes rows of waveform values as JSON or CSV;
- texts, for a text classifier: JSON {"texts": ["…", …]} (pairs of texts, [["…", "…"], …], for one that reads
  sentence pairs);
- a graph, for a graph network: JSON {"x": [[…], …], "edge_index": [[sources], [targets]]} with "batch" (to
  classify graphs), "edge_weight" or "pairs" (to score node pairs) where the model reads them, or the .npz file
  `udlc predict` reads, as the body or a form's one file (`curl -F graph=@graph.npz`), checked as its file is.

Answers are JSON (one object per row: the class and every class's probability, or the values named as
predict's CSV names them; a node pair's source, target and probability), or predict's own CSV where the request
asks for it (Accept: text/csv).

`POST /v1/sample/{name}` draws from a generative model as `udlc sample` does: JSON {"n", "seed", "class",
"steps", "sampler"} (each optional, as the command's options) in, the samples as .npy bytes out, or a PNG where
the request asks for one (Accept: image/png).
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from udlc.errors import UdlcError
from udlc.runtime.audio import is_sound_model
from udlc.runtime.http.limits import HttpError, Limits, json_object, read_body, too_large
from udlc.runtime.http.models import Served
from udlc.runtime.http.uploads import form_file, read_graph, read_picture, sound_answer
from udlc.runtime.nodes import EdgeScores
from udlc.runtime.pictures import is_picture_model
from udlc.runtime.predict import Inputs, Predictions
from udlc.runtime.rows import read_csv_rows, refuse_id
from udlc.tasks.served import EDGE_PROBABILITIES

CSV = "text/csv"
NPY, PNG = "application/x-npy", "image/png"
MAX_STEPS = 10_000  # a diffusion sampler's steps in one request
SOUND_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"fLaC", b"OggS", b"ID3")  # how WAV, FLAC and Ogg files begin


class _Body:
    """A request's CSV body where read_csv_rows expects a path: it opens as text and is named in messages."""

    def __init__(self, data: bytes, name: str):
        self.data, self.name = data, name

    def open(self, newline: str = "", encoding: str = "utf-8-sig") -> io.TextIOWrapper:
        return io.TextIOWrapper(io.BytesIO(self.data), encoding=encoding, newline=newline)

    def __str__(self) -> str:
        return self.name


async def prepare(model: Served, request: Any, limits: Limits
                  ) -> tuple[Callable[[], Predictions | EdgeScores], str | None]:
    """What the request asks of the model, read and checked here, and the uploaded picture's name where it is
    one; the work itself (the readers' own code, which runs the session) is the function returned, which the app
    runs on a worker thread."""
    reader = model.reader
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if model.kind.takes == "texts":
        body = json_object(await read_body(request, limits), _TEXTS[len(reader.columns)])
        texts = _texts(body, limits, reader.columns)
        return (lambda: reader.predict_texts(texts, [f"text {i + 1}" for i in range(len(texts))])), None
    if model.kind.takes == "graph":
        arrays, source = await read_graph(request, content_type, limits, model.kind.name == EDGE_PROBABILITIES)
        refuse_id(request.query_params.get("id"), source)  # as predict refuses --id for a graph file
        if model.kind.name == EDGE_PROBABILITIES:
            return (lambda: reader.scores(arrays, source)), None
        return (lambda: reader.predict_arrays(arrays, source)), None
    if is_picture_model(model.file.meta):
        picture, name = await read_picture(request, content_type, limits, model.file.meta)
        return (lambda: reader.predict(picture[None].astype(np.float32))), name
    sound = is_sound_model(model.file.meta)
    if sound and content_type == "multipart/form-data":
        data, name = await form_file(request, limits, "curl -F sound=@clip.wav")
        return sound_answer(model, data, name, limits), name
    body = await read_body(request, limits)
    if sound and (content_type.startswith("audio/") or content_type == "application/octet-stream"
                  or body.startswith(SOUND_MAGIC)):  # curl --data-binary @clip.wav sends a form's content type
        return sound_answer(model, body, "(body)", limits), "(body)"
    if sound and content_type != CSV and not body.lstrip().startswith(b"{"):  # rows of waveforms are JSON or CSV
        raise HttpError(415, "send the sound file as the body (Content-Type: audio/wav, …) or as a form's file "
                             "(curl -F sound=@clip.wav), or waveforms as JSON rows of values")
    id_column = request.query_params.get("id")
    if content_type == CSV:
        rows, lines = read_csv_rows(_Body(body, "the CSV body"))  # type: ignore[arg-type]
        inputs, count = Inputs("the CSV body", rows=rows, lines=lines, id_column=id_column), None
    else:
        asked = json_object(body, '{"rows": [{column: value, …}, …]}')
        inputs, count = _json_rows(asked, id_column, reader.columns or [])
    rows_asked = count if count is not None else len(inputs.rows or []) - 1  # a CSV's lines below its first
    if rows_asked > limits.rows:
        raise too_large(f"the request ({rows_asked:,} rows)", limits.rows, "rows", "--max-rows")

    def run() -> Predictions:
        predictions = reader.predict(inputs)
        if count is not None and len(predictions.values) != count:  # rows as lists: predict took the first for
            # a header, as it would in a CSV file, for a cell that is neither a number nor a known category
            raise UdlcError("rows line 1 holds text that is no number or known category, so it reads as a header "
                            "— fix its cells, or give the rows as objects keyed by column")
        return predictions

    return run, None


def prepare_draws(model: Served, asked: dict[str, Any], limits: Limits, png: bool) -> Callable[[], bytes]:
    """`udlc sample` over HTTP: {"n", "seed", "class", "steps", "sampler"} (all optional, as the command's
    options) in; the samples as a .npy file's bytes, or a PNG (images in a grid, 2-D points plotted) out."""
    from udlc.runtime.sample import write_samples

    unknown = set(asked) - {"n", "seed", "class", "steps", "sampler"}
    if unknown:
        raise HttpError(422, f"no option {sorted(unknown)[0][:40]!r} — a sample request takes n, seed, class, "
                             "steps and sampler")
    n, seed, label, steps = (asked.get(k, d) for k, d in (("n", 64), ("seed", 0), ("class", None), ("steps", None)))
    sampler = asked.get("sampler")
    for key, value in (("n", n), ("seed", seed), ("class", label), ("steps", steps)):
        if value is not None and type(value) is not int:
            raise HttpError(422, f"`{key}` is a whole number, not {json.dumps(value)[:40]}")
    if n < 1 or steps is not None and steps < 1:
        raise HttpError(422, "`n` and `steps` are at least 1")
    if n > limits.rows:
        raise too_large(f"the request ({n:,} samples)", limits.rows, "samples", "--max-rows")
    if steps is not None and steps > MAX_STEPS:  # each step runs the network, and --timeout cannot stop a thread
        raise HttpError(422, f"`steps` is at most {MAX_STEPS:,} here, not {steps:,}")
    if sampler not in (None, "ddpm", "ddim"):
        raise HttpError(422, f"`sampler` is ddpm or ddim, not {json.dumps(sampler)[:40]}")
    if seed < 0:
        raise HttpError(422, "`seed` is 0 or more")
    reader = model.reader

    def run() -> bytes:
        samples = reader.sample(n, seed, label, steps, sampler)
        with tempfile.TemporaryDirectory() as folder:  # the command's own writer, which writes files
            columns = reader.classes if reader.classes and label is None else None  # a column per class
            path = write_samples(samples, Path(folder) / ("samples.png" if png else "samples.npy"),
                                 reader.value_range, columns)
            return path.read_bytes()

    return run


def answer(predictions: Predictions | EdgeScores, csv: bool, named: bool, picture_name: str | None = None
           ) -> tuple[str, Any]:
    """(content type, body): predict's CSV, or a JSON object with an answer per row, each named by its cell of the
    id column where the request named one (`named`)."""
    if isinstance(predictions, EdgeScores):
        if csv:
            return CSV, predictions.to_csv()
        return "application/json", {"answers": [
            {"source": int(u), "target": int(v), "probability": float(p)}
            for u, v, p in zip(predictions.pairs[0], predictions.pairs[1], predictions.probability)]}
    if csv:
        return CSV, predictions.to_csv([picture_name] if picture_name else None)
    keys = predictions.keys if named else None
    answers: list[dict[str, Any]]
    if predictions.answers == "classification":
        assert predictions.probabilities is not None
        classes = predictions.classes or [str(i) for i in range(predictions.probabilities.shape[1])]
        answers = [{"prediction": label, "probabilities": dict(zip(classes, map(float, p)))}
                   for label, p in zip(predictions.labels(), predictions.probabilities)]
    else:
        values = predictions.values.reshape(len(predictions.values), -1)
        names = [f"y{i}" for i in range(values.shape[1])] if values.shape[1] > 1 else [predictions.target or "y"]
        answers = [dict(zip(names, map(float, row))) for row in values]
    if keys is not None:
        answers = [{predictions.key_name: key, **a} for key, a in zip(keys, answers)]
    if picture_name is not None:
        answers = [{"file": picture_name, **a} for a in answers]
    return "application/json", {"answers": answers}


_TEXTS = {1: '{"texts": ["…", …]}', 2: '{"texts": [["…", "…"], …]}'}  # a text classifier's; a sentence-pair one's


def _texts(body: dict[str, Any], limits: Limits, columns: list[str]) -> list:
    """The texts to classify: strings, or for a model that reads sentence pairs (two columns) pairs of strings."""
    texts = body.get("texts")
    pairs = len(columns) == 2
    fits = (lambda t: isinstance(t, list) and len(t) == 2 and all(isinstance(x, str) for x in t)) if pairs else \
        (lambda t: isinstance(t, str))
    if not isinstance(texts, list) or not texts or not all(fits(t) for t in texts):
        what = f"a list of pairs of texts ({' and '.join(columns)})" if pairs else "a list of texts"
        raise HttpError(400, f"send {_TEXTS[len(columns)]}: {what} to classify")
    if len(texts) > limits.rows:
        raise too_large(f"the request ({len(texts):,} texts)", limits.rows, "texts", "--max-rows")
    for i, text in enumerate(texts):
        for column, part in zip(columns, text if pairs else [text]):
            if not part.strip():
                which = f"{column} of text {i + 1}" if pairs else f"text {i + 1}"
                raise HttpError(422, f"{which} is empty — give the text to classify, or leave it out")
    return texts


def _json_rows(body: dict[str, Any], id_column: str | None, columns: list[str]) -> tuple[Inputs, int | None]:
    """JSON rows as the CSV they make: objects under a header of their keys (first seen first), lists as they
    are; and how many rows they are, where predict could take the first for a header."""
    rows = body.get("rows")
    if not isinstance(rows, list) or not rows:
        raise HttpError(400, 'send {"rows": [{column: value, …}, …]} (or rows as lists of values, by position)')
    if all(isinstance(r, dict) for r in rows):
        header = list(dict.fromkeys(str(k) for r in rows for k in r))
        cells = [[_cell(r.get(k), i, k) for k in header] for i, r in enumerate(rows, 2)]
        lines = list(range(1, len(rows) + 2))
        if id_column is None:
            # predict tells a header by its cells, and could take keys that look like numbers for a row; an id
            # column makes it read the header as one (and is no feature: it leaves it out of the model's input)
            id_column = next(n for n in ("line", "line#", "#line") if n not in header and n not in columns)
            header.append(id_column)
            cells = [row + [str(line)] for row, line in zip(cells, lines[1:])]
        return Inputs("rows", rows=[header, *cells], lines=lines, id_column=id_column), None
    if all(isinstance(r, list) for r in rows):
        if id_column is not None:
            raise HttpError(422, "?id names a column: give the rows as objects keyed by column")
        cells = [[_cell(v, i, str(j + 1)) for j, v in enumerate(r)] for i, r in enumerate(rows, 1)]
        return Inputs("rows", rows=cells, lines=list(range(1, len(rows) + 1))), len(rows)
    raise HttpError(400, "rows are all objects keyed by column, or all lists of values")


def _cell(value: Any, line: int, column: str) -> str:
    """A JSON value as the CSV cell it would be: numbers and text as written, null an empty cell."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise HttpError(422, f"rows line {line}, column '{column[:40]}': {type(value).__name__} is not a "
                             "number, a category or null")
    return value if isinstance(value, str) else repr(value)

