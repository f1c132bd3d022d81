"""No request makes `udlc serve` answer 500 or stop: generated bodies (JSON of every shape, near-miss tensors and
rows, raw bytes under any content type) sent to every route that reads a body are each answered 200 or a 4xx
with {"error": message}, and the server answers a good request afterwards."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serve_models import picture_classifier, sampler, text_classifier
from udlc.runtime.http.app import build_app
from udlc.runtime.http.limits import Limits

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
ROUTES = ["/v2/models/tiny-csv/infer", "/v2/models/reviews/infer", "/v1/predict/tiny-csv",
          "/v1/predict/reviews", "/v1/predict/shapes", "/v1/sample/points", "/v2/models/points/infer"]

scalars = st.none() | st.booleans() | st.integers(-(2 ** 70), 2 ** 70) | st.floats() | st.text(max_size=12)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=5), max_leaves=30)
# near misses: the right keys, with values drawn from anything
tensors = st.fixed_dictionaries({"name": st.sampled_from(["x", "tokens", "tokens_mask", "y"]) | st.text(max_size=4),
                                 "datatype": st.sampled_from(["FP32", "INT64", "BOOL", "BYTES", "fp32"]) | scalars,
                                 "shape": st.lists(st.integers(-2, 6), max_size=3) | json_values,
                                 "data": st.lists(scalars, max_size=12) | json_values})
outputs = st.lists(st.fixed_dictionaries({"name": st.text(max_size=12)}), max_size=2) | json_values
infer_bodies = st.fixed_dictionaries({"inputs": st.lists(tensors, max_size=3) | json_values},
                                     optional={"outputs": outputs, "id": json_values})
cells = st.sampled_from(["red", "green", "", "1e39", "nan", "-0", "inf"]) | scalars
row_bodies = st.fixed_dictionaries({"rows": st.lists(st.dictionaries(st.sampled_from(["color", "a", "b", "x", "1"]),
                                                                      cells, max_size=4)
                                                      | st.lists(cells, max_size=6), max_size=4) | json_values})
text_bodies = st.fixed_dictionaries({"texts": st.lists(st.text(max_size=40), max_size=4) | json_values})
draw_bodies = st.fixed_dictionaries({}, optional={
    "n": st.integers(-2, 80) | scalars, "seed": st.integers(-2, 2 ** 70) | scalars, "class": scalars,
    "steps": st.integers(-1, 20_000) | scalars, "sampler": st.sampled_from(["ddim", "ddpm"]) | scalars})
bodies = st.one_of(*(s.map(json.dumps) for s in (json_values, infer_bodies, row_bodies, text_bodies, draw_bodies))
                   ).map(str.encode) | st.binary(max_size=300)
content_types = st.sampled_from(["application/json", "text/csv", "image/png", "multipart/form-data; boundary=x",
                                 "multipart/form-data", "text/plain", ""])


@pytest.fixture(scope="module")
def client(tmp_path_factory, csv_run):
    from starlette.testclient import TestClient

    root = tmp_path_factory.mktemp("fuzz")
    files = [csv_run.run / "model.onnx", picture_classifier(root / "shapes" / "model.onnx"),
             text_classifier(root / "reviews" / "model.onnx"), sampler(root / "points" / "model.onnx")]
    with TestClient(build_app(files, Limits(body_bytes=4096, rows=50, pixels=4096), max_batch=4)) as c:
        yield c


@FUZZ
@given(route=st.sampled_from(ROUTES), body=bodies, content_type=content_types,
       accept=st.sampled_from(["", "text/csv", "image/png"]), query=st.sampled_from(["", "?id=color", "?id=zz"]))
def test_no_body_makes_the_server_fail(client, route: str, body: bytes, content_type: str, accept: str,
                                       query: str) -> None:
    answer = client.post(route + query, content=body, headers={"content-type": content_type, "accept": accept})
    assert answer.status_code == 200 or 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    if answer.status_code != 200:
        assert answer.headers["content-type"] == "application/json" and answer.json()["error"]


@FUZZ
@given(body=infer_bodies)
def test_no_tensor_makes_the_server_fail(client, body: dict) -> None:
    answer = client.post("/v2/models/tiny-csv/infer", content=json.dumps(body).encode())
    assert answer.status_code == 200 or 400 <= answer.status_code < 500, (answer.status_code, answer.text)


def test_the_server_still_answers_after_the_fuzz(client) -> None:
    good = client.post("/v1/predict/tiny-csv", json={"rows": [{"color": "red", "a": 50, "b": -3}]})
    assert good.status_code == 200 and good.json()["answers"][0]["prediction"] in ("yes", "no")
    deep = client.post("/v1/predict/tiny-csv", content=b"[" * 100_000)
    assert deep.status_code in (400, 413)
