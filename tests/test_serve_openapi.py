"""`udlc serve`'s OpenAPI document (`GET /openapi.json`) and its page (`GET /docs`): the document is OpenAPI 3.1,
names every route the app mounts, and each route's example request, sent to the app, is answered 200 with what the
document says it answers; a row's columns are the file's, a categorical one's enum its categories.

Served: the session's trained runs (digits: values by position; csv: rows keyed by column) and the hand-built
files of every other kind (tests/serve_models.py, and the page's and generate's tests' models)."""

from __future__ import annotations

import html
import io
import json
import re
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np
import pytest

from tests.conftest import TrainedRun
from tests.serve_models import (CATEGORIES, COLUMN, graph_network, letter_model, picture_classifier, rows_model,
                                 sampler, seq2seq, text_classifier, token_labeller, write_picture)
from udlc.runtime.http.app import build_app
from udlc.runtime.http.limits import Limits

LIMITS = Limits(body_bytes=64 * 1024, rows=100, pixels=400, seconds=10, new_tokens=64)
UNDOCUMENTED = {"/metrics", "/", "/docs", "/openapi.json"}  # the server's own pages, not its API


@pytest.fixture(scope="module")
def app(tmp_path_factory, digits_run: TrainedRun, csv_run: TrainedRun):
    root = tmp_path_factory.mktemp("openapi")
    files = [digits_run.run / "model.onnx", csv_run.run / "model.onnx"] + [
        make(root / name / "model.onnx") for name, make in (
            ("shapes", picture_classifier), ("reviews", text_classifier), ("points", sampler), ("fruit", rows_model),
            ("letters", lambda p: letter_model(p, "letters")), ("s2s", seq2seq), ("labels", token_labeller),
            ("nodes", lambda p: graph_network(p, links=False)), ("links", lambda p: graph_network(p, links=True)))]
    return build_app(files, LIMITS, max_batch=1)


@pytest.fixture(scope="module")
def client(app):
    from starlette.testclient import TestClient

    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def doc(client) -> dict:
    answer = client.get("/openapi.json")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    return answer.json()


def test_the_document_is_openapi_3_1(doc: dict) -> None:
    try:
        from openapi_spec_validator import validate
    except ImportError:  # its structure, where the validator is not installed
        assert doc["openapi"] == "3.1.0" and doc["info"]["title"] and doc["paths"]
        for path, operations in doc["paths"].items():
            assert path.startswith("/") and operations
            for op in operations.values():
                answers = op["responses"]["200"]["content"]
                assert answers and all("schema" in c for c in answers.values())
        return
    validate(doc)  # raises, naming what is wrong


def test_every_route_the_app_mounts_is_documented(app, doc: dict) -> None:
    from starlette.routing import Match

    documented = [(unquote(path), method.upper()) for path, ops in doc["paths"].items() for method in ops]
    for route in app.app.routes:
        if route.path in UNDOCUMENTED:
            continue
        methods = route.methods - {"HEAD"}
        found = {m for path, m in documented
                 if route.matches({"type": "http", "path": path, "method": m})[0] == Match.FULL}
        assert found >= methods, f"{route.path} ({methods}) is not in the document"
    # and each model's routes, by its name
    assert {"/v1/predict/tiny-digits", "/v1/predict/tiny-csv", "/v1/sample/points", "/v1/generate/letters",
            "/v2/models/tiny-csv/infer"} <= {p for p, _ in documented}


def _validate(doc: dict, schema: dict, value) -> None:
    import jsonschema

    jsonschema.Draft202012Validator({**schema, "components": doc["components"]}).validate(value)


def _answer(client, doc: dict, path: str, method: str, media: str, example, meta: dict | None):
    """The app's answer to the example of `path`'s request body in `media`."""
    if media == "application/json":
        return client.post(path, json=example)
    if media == "text/csv":
        return client.post(path, content=example, headers={"Content-Type": "text/csv"})
    if media == "application/octet-stream" or "graph" in (example or {}):  # the JSON example's graph as an .npz
        graph = doc["paths"][path][method]["requestBody"]["content"]["application/json"]["example"]
        packed = io.BytesIO()
        np.savez(packed, **{k: np.asarray(v, np.float32 if k == "x" else np.int64) for k, v in graph.items()})
        if media == "application/octet-stream":
            return client.post(path, content=packed.getvalue(), headers={"Content-Type": media})
        return client.post(path, files={"graph": ("graph.npz", packed.getvalue())})
    picture = write_picture(Path(meta["dir"]) / "picture.png", 0, tuple(json.loads(meta["pictures"])["size"]))
    if media == "multipart/form-data":
        return client.post(path, files={"picture": ("picture.png", picture.read_bytes())})
    return client.post(path, content=picture.read_bytes(), headers={"Content-Type": "image/png"})


def _check(doc: dict, op: dict, answer) -> None:
    """The answer is 200, of a media type the document gives, and what its schema says."""
    assert answer.status_code == 200, answer.text
    media = answer.headers["content-type"].split(";")[0]
    content = op["responses"]["200"]["content"]
    assert media in content, f"{media} is not in {list(content)}"
    if media == "application/json":
        _validate(doc, content[media]["schema"], answer.json())
    elif media == "text/event-stream":  # each event's data as its schema in components says
        events = [e for e in answer.text.split("\n\n") if e.strip()]
        for event in events:
            name = (re.search(r"^event: (.*)$", event, re.M) or [None, "token"])[1]
            assert name != "error", event
            data = json.loads(re.search(r"^data: (.*)$", event, re.M)[1])
            _validate(doc, {"$ref": f"#/components/schemas/{name.capitalize()}Event"}, data)
        assert events[-1].startswith("event: done")
    elif media == "text/csv":  # predict's CSV: a header, then the answers
        assert len(answer.text.splitlines()) >= 2
    elif media == "application/x-npy":
        assert np.load(io.BytesIO(answer.content)).shape[0] == 4  # the example's n
    else:
        assert media == "image/png" and answer.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_each_example_is_answered_as_documented(client, app, doc: dict, tmp_path: Path) -> None:
    metas = {m.name: {**m.file.meta, "dir": str(tmp_path)} for m in app.models.values()}
    asked = 0
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            if method == "get":
                _check(doc, op, client.get(path))
                continue
            name = unquote(path.rsplit("/", 2)[-2 if path.endswith("/infer") else -1])
            for media, content in op["requestBody"]["content"].items():
                example = content.get("example")
                answer = _answer(client, doc, path, method, media, example, metas[name])
                _check(doc, op, answer)
                asked += 1
                if path.startswith("/v1/generate/letters"):  # a stream by default; JSON where asked for
                    _check(doc, op, client.post(path + "?stream=false", json=example))
                if path.startswith("/v1/sample/"):  # a .npy by default; a PNG where asked for
                    _check(doc, op, client.post(path, json=example, headers={"Accept": "image/png"}))
                if "text/csv" in op["responses"]["200"]["content"] and media == "application/json":
                    csv = client.post(path, json=example, headers={"Accept": "text/csv"})  # predict's CSV
                    _check(doc, op, csv)
                    assert len(csv.text.splitlines()) == 1 + len(answer.json()["answers"])
    assert asked >= 30


def test_a_rows_model_is_documented_by_its_columns(doc: dict, app) -> None:
    for model in app.models.values():
        columns = json.loads(model.file.meta.get("feature_columns") or "null")
        if not columns or model.file.meta.get("pictures"):
            continue
        categories = json.loads(model.file.meta.get("categories", "{}"))
        fill = json.loads(model.file.meta.get("fill_values", "{}"))
        body = doc["paths"][f"{model.kind.route}/{quote(model.name, safe='')}"]["post"]["requestBody"]["content"]
        row = body["application/json"]["schema"]["properties"]["rows"]["items"]
        raw = list(dict.fromkeys(c.split("=")[0] for c in columns))  # one-hot columns fold back into theirs
        assert list(row["properties"]) == raw == row["required"]
        for column, schema in row["properties"].items():
            if column in categories:
                assert schema["enum"] == categories[column] + ([None] if column in fill else [])
            else:
                assert schema["type"] == (["number", "null"] if column in fill else "number")
    fruit = doc["paths"]["/v1/predict/fruit%20%3Cb%3E"]["post"]["requestBody"]["content"]
    assert fruit["application/json"]["schema"]["properties"]["rows"]["items"]["properties"]["color"]["enum"] == \
        CATEGORIES
    assert fruit["text/csv"]["example"].splitlines()[0] == f'weight,"{COLUMN.replace(chr(34), 2 * chr(34))}",color'
    # a model that names no columns takes its values by position; generate's options are bounded by the server's
    digits = doc["paths"]["/v1/predict/tiny-digits"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    items = digits["properties"]["rows"]["items"]
    assert items["type"] == "array" and items["minItems"] == items["maxItems"] == 64
    options = doc["paths"]["/v1/generate/letters"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert options["properties"]["max_new_tokens"]["maximum"] == LIMITS.new_tokens
    assert options["properties"]["prompt"]["maxLength"] == LIMITS.prompt_chars


def test_the_docs_page_shows_each_route_without_fetching(client, doc: dict) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text)  # nothing from elsewhere
    assert "<script" not in page.text and "fruit <b>" not in page.text  # what a file says is escaped
    for path in doc["paths"]:
        assert f"<code>{path}</code>" in page.text
    curl = "curl http://127.0.0.1:8000/v1/predict/tiny-csv -H 'Content-Type: application/json' -d '{\"rows\": [{"
    assert html.escape(curl) in page.text
    assert 'href="docs"' in client.get("/").text  # linked from the page to try the models
