"""A model that classifies sentence pairs, served: the friendly route takes pairs of texts and answers as
`udlc predict` answers their CSV; one text where a pair is due, or an empty half, is told what to send; the page
shows a box per column and the OpenAPI document describes pairs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.serve_models import pair_classifier
from udlc.runtime.http.app import build_app
from udlc.runtime.http.limits import Limits
from udlc.runtime.readers import open_reader


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from starlette.testclient import TestClient

    path = pair_classifier(tmp_path_factory.mktemp("pairs") / "model.onnx")
    with TestClient(build_app([path], Limits(), max_batch=1)) as client:
        yield client, path


def test_pairs_are_classified_as_predict_classifies_their_csv(served, tmp_path: Path) -> None:
    client, path = served
    pairs = [["x = 1  # one", "this is a comment"], ["def f():", "this is code"]]
    (tmp_path / "p.csv").write_text("line,claim\n" + "".join(f'"{a}",{b}\n' for a, b in pairs))
    expected = open_reader(path, "predict").predict_csv(tmp_path / "p.csv")
    answers = client.post("/v1/predict/claims", json={"texts": pairs}).json()["answers"]
    assert [a["prediction"] for a in answers] == list(expected.labels())
    assert [a["probabilities"]["good"] for a in answers] == pytest.approx(expected.probabilities[:, 1].tolist(),
                                                                          abs=1e-6)


@pytest.mark.parametrize("texts, status, words", [
    (["a single text"], 400, 'send {"texts": [["…", "…"], …]}: a list of pairs of texts (line and claim)'),
    ([["only one"]], 400, "pairs of texts (line and claim)"),
    ([["x = 1", "  "]], 422, "claim of text 1 is empty"),
])
def test_what_is_not_a_pair_is_told_what_to_send(served, texts, status, words) -> None:
    client, _ = served
    answer = client.post("/v1/predict/claims", json={"texts": texts})
    assert answer.status_code == status and words in answer.json()["error"], answer.text


def test_the_page_and_the_openapi_document_ask_for_pairs(served) -> None:
    client, _ = served
    page = client.get("/").text
    assert 'name="text"' in page and 'name="text2"' in page and ">line <textarea" in page
    body = client.get("/openapi.json").json()["paths"]["/v1/predict/claims"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]["properties"]["texts"]["items"]
    assert schema["minItems"] == schema["maxItems"] == 2
