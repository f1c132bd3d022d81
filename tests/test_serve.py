"""`udlc serve`: the Open Inference Protocol and the friendly routes answer what `udlc predict` answers, with its
messages for bad inputs; concurrent requests are batched without changing any answer; every request is bounded;
requests are logged and counted. (The command, a real server and its SIGTERM: tests/test_serve_process.py.)

The app is tested in process through Starlette's TestClient (and httpx's ASGI transport, for concurrency) over
the session's trained runs and two small hand-built files (tests/serve_models.py)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import CSV_HEADER, TrainedRun, csv_rows, write_csv
from tests.serve_models import picture_classifier, sampler, text_classifier, write_picture
from udlc.errors import UdlcError
from udlc.runtime.http.app import build_app
from udlc.runtime.http.limits import Limits
from udlc.runtime.readers import open_reader

LIMITS = Limits(body_bytes=64 * 1024, rows=100, pixels=400, seconds=10)


@pytest.fixture(scope="module")
def files(tmp_path_factory, digits_run: TrainedRun, sine_run: TrainedRun, csv_run: TrainedRun) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("served")
    return {"tiny-digits": digits_run.run / "model.onnx", "tiny-sine": sine_run.run / "model.onnx",
            "tiny-csv": csv_run.run / "model.onnx", "shapes": picture_classifier(root / "shapes" / "model.onnx"),
            "reviews": text_classifier(root / "reviews" / "model.onnx"),
            "points": sampler(root / "points" / "model.onnx")}


@pytest.fixture(scope="module")
def client(files: dict[str, Path]):
    """Every file behind one server, without batching: each request answered alone."""
    from starlette.testclient import TestClient

    with TestClient(build_app(list(files.values()), LIMITS, max_batch=1)) as c:
        yield c


def predict_error(reader, path: Path) -> str:
    """The message `udlc predict` gives for the file at `path`."""
    with pytest.raises(UdlcError) as e:
        reader.answer_file(path)
    return str(e.value)


def csv_text(rows: list[list[str]], header: list[str] | None = CSV_HEADER) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(([header] if header else []) + rows)
    return out.getvalue()


# ---- the Open Inference Protocol --------------------------------------------------------------------------


def test_health_and_each_models_metadata(client, files) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").status_code == 200
    meta = client.get("/v2/models/tiny-csv").json()
    assert meta["name"] == "tiny-csv" and meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 5]}]
    assert [(o["name"], o["shape"]) for o in meta["outputs"]] == [("logits", [-1, 2]), ("probabilities", [-1, 2])]
    assert client.get("/v2/models/reviews").json()["inputs"] == [
        {"name": "tokens", "datatype": "INT64", "shape": [-1, -1]},
        {"name": "tokens_mask", "datatype": "BOOL", "shape": [-1, -1]}]
    assert client.get("/v2/models/shapes/ready").json() == {"name": "shapes", "ready": True}
    missing = client.get("/v2/models/nope/ready")
    assert missing.status_code == 404 and "tiny-digits" in missing.json()["error"]
    listed = {m["name"]: m["routes"] for m in client.get("/v1/models").json()["models"]}
    assert listed["tiny-sine"] == ["/v2/models/tiny-sine/infer", "/v1/predict/tiny-sine"] and set(listed) == set(files)


def test_infer_answers_what_onnxruntime_answers(client, files) -> None:
    import onnxruntime as ort

    x = np.random.default_rng(0).integers(0, 17, (3, 64)).astype(np.float32)
    expected = ort.InferenceSession(str(files["tiny-digits"])).run(["probabilities"], {"x": x})[0]
    answer = client.post("/v2/models/tiny-digits/infer", json={
        "id": "r1", "inputs": [{"name": "x", "datatype": "FP32", "shape": [3, 64], "data": x.tolist()}],
        "outputs": [{"name": "probabilities"}]}).json()
    assert answer["model_name"] == "tiny-digits" and answer["id"] == "r1"
    (out,) = answer["outputs"]
    assert out["name"] == "probabilities" and out["datatype"] == "FP32" and out["shape"] == [3, 10]
    np.testing.assert_array_equal(np.float32(out["data"]).reshape(3, 10), expected)


def tensor(**changes) -> dict:
    return {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [0.5], **changes}]}


@pytest.mark.parametrize("body, status, words", [
    (b'{"inputs": [', 400, "not valid JSON"),
    (b"[1, 2]", 400, "a JSON array, not an object"),
    (tensor(name="y"), 422, "no input named 'y' — the model takes x"),
    (tensor(datatype="INT64", data=[1]), 422, "input 'x' is FP32, not 'INT64'"),
    (tensor(shape=[1, 2], data=[1, 2]), 422, "has shape [-1, 1] (-1: any size), not [1, 2]"),
    (tensor(shape=[2, 1]), 422, "its shape holds 2 values, its data 1"),
    (tensor(data=["a"]), 422, "its data holds a value of another type ('a')"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [NaN]}]}', 422,
     "holds NaN, inf or values beyond float32"),
    (tensor(data=[1e39]), 422, "holds NaN, inf or values beyond float32"),
    ({**tensor(), "outputs": [{"name": "z"}]}, 422, "no output named 'z' — the model gives prediction"),
    (tensor(shape=[101, 1], data=[0.5] * 101), 413, "over this server's limit of 100 samples"),
])
def test_every_bad_tensor_is_told_what_is_wrong(client, body, status, words) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer = client.post("/v2/models/tiny-sine/infer", content=content)
    assert answer.status_code == status and words in answer.json()["error"], answer.text


def test_values_the_graph_cannot_take_are_refused_not_crashed_on(client) -> None:
    """A token id past the vocabulary passes every check of the protocol; onnxruntime refuses it."""
    answer = client.post("/v2/models/reviews/infer", json={"inputs": [
        {"name": "tokens", "datatype": "INT64", "shape": [1, 2], "data": [1, 300]},
        {"name": "tokens_mask", "datatype": "BOOL", "shape": [1, 2], "data": [True, True]}]})
    assert answer.status_code == 422 and "the model cannot run on these inputs" in answer.json()["error"]
    assert client.get("/v2/health/live").status_code == 200


# ---- rows, pictures, texts: what `udlc predict` answers -----------------------------------------------------


def test_rows_get_predicts_answers_as_csv_and_as_json(client, files, tmp_path: Path) -> None:
    rows = [r for r in csv_rows(20)]
    path = write_csv(tmp_path / "rows.csv", CSV_HEADER, rows)
    expected = open_reader(files["tiny-csv"], "predict").answer_file(path)
    as_csv = client.post("/v1/predict/tiny-csv", content=path.read_bytes(),
                         headers={"content-type": "text/csv", "accept": "text/csv"})
    assert as_csv.status_code == 200 and as_csv.text == expected
    # the same rows as JSON objects, keys in another order, empty cells as null, the target left out
    objects = [{"b": float(b), "a": float(a) if a else None, "color": color} for color, a, _, b in rows]
    answers = client.post("/v1/predict/tiny-csv", json={"rows": objects}).json()["answers"]
    for got, want in zip(answers, csv.DictReader(io.StringIO(expected)), strict=True):
        assert got["prediction"] == want["prediction"]
        for name, p in got["probabilities"].items():
            assert abs(p - float(want[f"p_{name}"])) <= 5e-7
    assert client.post("/v1/predict/tiny-csv?id=color", content=path.read_bytes(),
                       headers={"content-type": "text/csv"}).json()["answers"][0]["color"] == rows[0][0]


def test_a_regression_answers_values_in_the_targets_units(client, files, tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("x\n0.5\n2.5\n")
    expected = [float(r["y"]) for r in csv.DictReader(io.StringIO(
        open_reader(files["tiny-sine"], "predict").answer_file(path)))]
    answers = client.post("/v1/predict/tiny-sine", json={"rows": [[0.5], [2.5]]}).json()["answers"]
    assert [a["y"] for a in answers] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("cells, words", [
    ([["pink", "50", "no", "1"]], "'pink' is not one of the categories"),
    ([["red", "fifty", "no", "1"]], "'fifty' is not a number"),
    ([["red", "50", "no", "nan"]], "is not a finite float32 value"),
    ([["red", "50", "no", "1"], ["", "", "", ""], ["red", "50", "no", "1"]], "line 3 is an empty row"),
    ([["red", "50", "no"]], "3 cells, but the header has 4"),
])
def test_bad_rows_get_the_message_predict_gives(client, files, tmp_path: Path, cells, words) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(csv_text(cells))
    expected = predict_error(open_reader(files["tiny-csv"], "predict"), path)
    answer = client.post("/v1/predict/tiny-csv", content=path.read_bytes(), headers={"content-type": "text/csv"})
    assert answer.status_code == 422 and answer.json()["error"] == expected.replace(str(path), "the CSV body")
    assert words in expected


def test_json_rows_are_read_as_the_csv_they_make(client) -> None:
    missing = client.post("/v1/predict/tiny-csv", json={"rows": [{"color": "red", "b": 1}]}).json()["error"]
    assert missing.startswith("rows has no column 'a' — the model takes the columns color, a, b")
    nested = client.post("/v1/predict/tiny-csv", json={"rows": [{"color": "red", "a": [1], "b": 1}]})
    assert nested.status_code == 422 and "rows line 2, column 'a': list is not a number" in nested.json()["error"]
    numbers_as_keys = client.post("/v1/predict/tiny-csv", json={"rows": [{"1": 1, "2": 2, "3": 3}]})
    assert numbers_as_keys.json()["error"].startswith("rows has no column 'color', 'a', 'b' — the model takes")
    by_position = client.post("/v1/predict/tiny-sine", json={"rows": [{"x": 0.5}, {"x": 1.5}]}).json()["answers"]
    assert by_position == client.post("/v1/predict/tiny-sine", json={"rows": [[0.5], [1.5]]}).json()["answers"]


def test_a_picture_is_classified_as_predict_classifies_its_file(client, files, tmp_path: Path) -> None:
    picture = write_picture(tmp_path / "p1.png", seed=1, size=(12, 10))  # not 8×8: cropped and resized
    expected = open_reader(files["shapes"], "predict").answer_file(picture)
    form = client.post("/v1/predict/shapes", files={"picture": ("p1.png", picture.read_bytes(), "image/png")},
                       headers={"accept": "text/csv"})
    assert form.status_code == 200 and form.text == expected
    body = client.post("/v1/predict/shapes", content=picture.read_bytes(), headers={"content-type": "image/png"})
    (answer,) = body.json()["answers"]
    assert answer["prediction"] == expected.splitlines()[1].split(",")[1]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture")
    unreadable = client.post("/v1/predict/shapes", files={"picture": ("broken.png", broken.read_bytes())})
    assert unreadable.status_code == 422
    assert unreadable.json()["error"] == predict_error(open_reader(files["shapes"], "predict"), broken).replace(
        str(broken), "broken.png")
    huge = client.post("/v1/predict/shapes", files={"picture": ("big.png", write_picture(
        tmp_path / "big.png", seed=2, size=(21, 20)).read_bytes())})
    assert huge.status_code == 413 and "(21×20 pixels) is over this server's limit of 400 pixels" in huge.text


def test_texts_are_classified_as_predict_classifies_them(client, files) -> None:
    texts = ["a fine film", "dull", "ünïcode ✓"]
    expected = open_reader(files["reviews"], "predict").predict_texts(texts)
    answers = client.post("/v1/predict/reviews", json={"texts": texts}).json()["answers"]
    assert [a["prediction"] for a in answers] == expected.labels()
    np.testing.assert_array_equal([list(a["probabilities"].values()) for a in answers], expected.probabilities)
    empty = client.post("/v1/predict/reviews", json={"texts": ["fine", " "]})
    assert empty.status_code == 422 and empty.json()["error"].startswith("text 2 is empty")


def test_samples_are_drawn_as_udlc_sample_draws_them(client, files) -> None:
    expected = open_reader(files["points"], "sample").sample(5, 7)
    drawn = client.post("/v1/sample/points", json={"n": 5, "seed": 7})
    assert drawn.headers["content-type"] == "application/x-npy"
    np.testing.assert_array_equal(np.load(io.BytesIO(drawn.content)), expected)
    assert np.load(io.BytesIO(client.post("/v1/sample/points").content)).shape == (64, 2)  # the command's defaults
    png = client.post("/v1/sample/points", json={"n": 50}, headers={"accept": "image/png"})
    assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG")
    diffusion_only = client.post("/v1/sample/points", json={"steps": 10})
    assert diffusion_only.status_code == 422 and "--class, --steps and --sampler are a diffusion model's" in \
        diffusion_only.json()["error"]
    assert client.post("/v1/sample/points", json={"n": "5"}).status_code == 422
    assert client.post("/v1/sample/points", json={"n": 101}).status_code == 413
    assert client.post("/v1/predict/points", json={"n": 5}).json()["error"] == (
        "'points' serves a generative model's samples (a VAE's decoder, a GAN's generator): this server answers "
        "for it at POST /v1/sample/points or POST /v2/models/points/infer")


def test_every_request_is_bounded(client) -> None:
    big = client.post("/v1/predict/tiny-sine", content=b"x\n" + b"0.5\n" * 20_000, headers={"content-type": "text/csv"})
    assert big.status_code == 413 and "the body (80,002 bytes)" in big.json()["error"]

    def chunks():  # no Content-Length: cut off as it passes the limit
        for _ in range(100):
            yield b"0.5\n" * 1000

    streamed = client.post("/v1/predict/tiny-sine", content=chunks(), headers={"content-type": "text/csv"})
    assert streamed.status_code == 413 and "limit of 65,536 bytes" in streamed.json()["error"]
    rows = client.post("/v1/predict/tiny-sine", json={"rows": [[0.5]] * 101})
    assert rows.status_code == 413 and "(101 rows) is over this server's limit of 100 rows" in rows.json()["error"]
    texts = client.post("/v1/predict/reviews", json={"texts": ["a"] * 101})
    assert texts.status_code == 413


# ---- batching, time, logs and metrics ---------------------------------------------------------------------


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(client, files) -> None:
    import httpx

    app = build_app([files["tiny-digits"], files["tiny-csv"]], LIMITS, max_batch=64, max_wait_ms=100)
    rng = np.random.default_rng(3)
    tensors = [rng.integers(0, 17, (n, 64)).astype(float).tolist() for n in (1, 3, 2, 1, 4, 1, 2, 3)]
    infer = [{"inputs": [{"name": "x", "datatype": "FP32", "shape": [len(t), 64], "data": t}]} for t in tensors]
    rows = [{"rows": [{"color": c, "a": float(a) if a else None, "b": float(b)} for c, a, _, b in csv_rows(n)]}
            for n in (1, 5, 2)]

    async def together() -> list:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://serve") as c:
            asked = [c.post("/v2/models/tiny-digits/infer", json=b) for b in infer] + \
                    [c.post("/v1/predict/tiny-csv", json=b) for b in rows]
            return [r.json() for r in await asyncio.gather(*asked)]

    batched = asyncio.run(together())
    alone = [client.post("/v2/models/tiny-digits/infer", json=b).json() for b in infer] + \
            [client.post("/v1/predict/tiny-csv", json=b).json() for b in rows]
    assert batched == alone
    metrics = app.registry.get_sample_value
    calls = metrics("udlc_batch_size_count", {"model": "tiny-digits"})
    assert metrics("udlc_batch_size_sum", {"model": "tiny-digits"}) == sum(len(t) for t in tensors)
    assert calls < len(infer), "eight requests arriving together ran as as many calls: nothing was batched"
    for served in app.models.values():
        served.close()


def test_a_request_past_its_time_is_answered_503(files) -> None:
    from starlette.testclient import TestClient

    app = build_app([files["tiny-sine"]], Limits(seconds=0.05), max_batch=8, max_wait_ms=400)
    with TestClient(app) as c:
        late = c.post("/v1/predict/tiny-sine", json={"rows": [[0.5]]})
    assert late.status_code == 503 and "--timeout" in late.json()["error"]


def test_each_request_is_logged_and_counted(client, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="udlc.serve"):
        client.post("/v1/predict/tiny-sine", json={"rows": [[0.5]]})
        client.post("/v1/predict/tiny-sine", content=b"{")
    lines = [r.getMessage() for r in caplog.records if r.name == "udlc.serve"]
    assert lines[0].startswith("POST /v1/predict/tiny-sine 200 ") and lines[0].endswith(" ms")
    assert lines[1].startswith("POST /v1/predict/tiny-sine 400 ")
    metrics = client.get("/metrics").text
    assert 'udlc_requests_total{method="POST",route="/v1/predict/{name}",status="400"}' in metrics
    assert 'udlc_request_seconds_bucket{le="0.001",route="/v1/predict/{name}"}' in metrics
    assert 'udlc_batch_size_count{model="tiny-sine"}' in metrics


def test_a_bug_of_udlc_is_a_500_that_says_so_and_the_server_goes_on(client, monkeypatch, caplog) -> None:
    served = client.app.models["tiny-sine"]

    def broken(inputs):
        raise ValueError("a bug")

    monkeypatch.setattr(served.reader, "predict", broken)
    with caplog.at_level(logging.INFO, logger="udlc.serve"):
        answer = client.post("/v1/predict/tiny-sine", json={"rows": [[0.5]]})
    assert answer.status_code == 500 and answer.json()["error"].startswith("internal error: ValueError")
    assert any(r.exc_info and "a bug" in str(r.exc_info[1]) for r in caplog.records)  # the traceback, in the log
    monkeypatch.undo()
    assert client.post("/v1/predict/tiny-sine", json={"rows": [[0.5]]}).status_code == 200


# ---- files and names --------------------------------------------------------------------------------------


def test_a_run_folder_serves_each_of_its_files_by_name(tmp_path: Path, files) -> None:
    from udlc.cli.serving import _served_files

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(files["tiny-digits"], run / "model.onnx")
    shutil.copy(files["tiny-digits"], run / "model.int8.onnx")  # a second file of the run, as quantize writes
    app = build_app(_served_files(run), max_batch=1)
    assert set(app.models) == {"tiny-digits", "tiny-digits-model.int8"}
    shutil.copy(files["shapes"], tmp_path / "model.onnx")
    with pytest.raises(UdlcError, match="are both named 'shapes'"):
        build_app([files["shapes"], tmp_path / "model.onnx"])


@pytest.mark.long
def test_a_run_folder_without_a_file_is_exported_first(tmp_path: Path, digits_run: TrainedRun) -> None:
    from udlc.cli.serving import _served_files

    run = shutil.copytree(digits_run.run, tmp_path / "run", ignore=shutil.ignore_patterns("*.onnx"))
    assert _served_files(run) == [run / "model.onnx"]
