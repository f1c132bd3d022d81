"""`udlc serve` for a model trained on sound clips: a WAV, FLAC or OGG file uploaded to its friendly route (a form's
file, or the body) gets the answer `udlc predict` gives for the same file, decoded by the same code; the Open
Inference Protocol's route takes the waveform tensor; a file that is no sound gets predict's message (422), and
one that would decode to more than the server takes is refused before it is decoded (413). The page at `/` and
the OpenAPI document offer the upload.

The model is built by hand (as tests/serve_models.py builds the server's others): a linear classifier of the
waveform, with the `audio` metadata udlc's exporter writes for a run on sound clips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from udlc.errors import UdlcError
from udlc.runtime.audio import read_clips
from udlc.runtime.http.app import build_app
from udlc.runtime.http.limits import Limits
from udlc.runtime.readers import open_reader

RATE, SECONDS = 8000, 0.25
SAMPLES = int(RATE * SECONDS)
LIMITS = Limits(body_bytes=64 * 1024, rows=100, seconds=10)  # 32,768 values decoded at most
CLASSES = ["low", "mid", "high"]


def sound_classifier(path: Path) -> Path:
    """x (N, 1, 2000) waveform at 8 kHz → logits and probabilities of three classes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).normal(size=(SAMPLES, 3)).astype(np.float32)
    nodes = [helper.make_node("Flatten", ["x"], ["flat"]),
             helper.make_node("Gemm", ["flat", "w", "b"], ["logits"], alpha=0.1),
             helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)]
    graph = helper.make_graph(
        nodes, "tones", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, SAMPLES])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, ["batch", 3]) for o in ("logits", "probabilities")],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.zeros(3, np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    audio = {"sample_rate": RATE, "duration": SECONDS, "samples": SAMPLES, "crop": "center", "channels": 1,
             "mono": "mean", "resample": "polyphase kaiser 5.0 (scipy.signal.resample_poly)"}
    meta = {"spec_name": "tones", "served": "classes", "task": "supervised", "target": "classification",
            "classes": json.dumps(CLASSES), "input_names": json.dumps(["x"]), "input_shapes": json.dumps([[1, SAMPLES]]),
            "outputs": json.dumps(["logits", "probabilities"]), "feature_columns": "null",
            "pictures": json.dumps(None), "audio": json.dumps(audio)}
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def tone(path: Path, rate: int, seconds: float, stereo: bool = False) -> Path:
    t = np.arange(int(rate * seconds)) / rate
    y = 0.5 * np.sin(2 * np.pi * 440 * t) * np.linspace(0.2, 1, len(t))  # a rising tone: cutting it matters
    sf.write(path, np.stack([y, -y / 3], 1) if stereo else y, rate)
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from starlette.testclient import TestClient

    root = tmp_path_factory.mktemp("serve_audio")
    model = sound_classifier(root / "model.onnx")  # served by its spec_name: tones
    clips = [tone(root / "long.wav", 8000, 0.4, stereo=True),  # cut at the centre
             tone(root / "short.flac", 11025, 0.1),  # resampled and padded
             tone(root / "other.ogg", 16000, 0.3, stereo=True)]
    with TestClient(build_app([model], LIMITS, max_batch=1)) as client:
        yield client, model, clips


def test_an_uploaded_sound_file_gets_predicts_answer(served) -> None:
    client, model, clips = served
    reader = open_reader(model, "predict")
    for clip in clips:
        expected = reader.answer_file(clip)  # what `udlc predict tones.onnx CLIP` writes
        form = client.post("/v1/predict/tones", files={"sound": (clip.name, clip.read_bytes(), "audio/wav")},
                           headers={"accept": "text/csv"})
        assert form.status_code == 200 and form.text == expected, clip.name
        _, waveform = read_clips(reader.meta, clip)
        probabilities = reader.predict(waveform).probabilities[0]
        # the body: by its Content-Type, or by how it begins (curl --data-binary sends a form's type)
        for content_type in ("audio/ogg", "application/x-www-form-urlencoded"):
            body = client.post("/v1/predict/tones", content=clip.read_bytes(), headers={"content-type": content_type})
            (answer,) = body.json()["answers"]
            assert answer["file"] == "(body)" and answer["prediction"] == CLASSES[int(probabilities.argmax())]
            assert [answer["probabilities"][c] for c in CLASSES] == pytest.approx(probabilities, abs=0, rel=1e-6)
        # the Open Inference Protocol's route takes the decoded waveform, and answers the same
        tensor = {"name": "x", "datatype": "FP32", "shape": [1, 1, SAMPLES], "data": waveform.ravel().tolist()}
        infer = client.post("/v2/models/tones/infer", json={"inputs": [tensor]}).json()
        (out,) = [o for o in infer["outputs"] if o["name"] == "probabilities"]
        assert out["data"] == pytest.approx(probabilities, rel=1e-6)
    rows = client.post("/v1/predict/tones", json={"rows": [waveform.ravel().tolist()]})  # values still work
    assert rows.json()["answers"][0]["probabilities"]["low"] == pytest.approx(probabilities[0], rel=1e-6)


def test_a_file_that_is_no_sound_gets_predicts_message(served, tmp_path: Path) -> None:
    client, model, _ = served
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x10\0\0\0WAVEnot a sound file at all")
    with pytest.raises(UdlcError) as e:
        open_reader(model, "predict").answer_file(broken)
    said = str(e.value).replace(str(broken), "broken.wav")  # `udlc predict tones.onnx broken.wav`, from its folder
    assert said.startswith("cannot read the sound file broken.wav: ")
    form = client.post("/v1/predict/tones", files={"sound": ("broken.wav", broken.read_bytes())})
    assert form.status_code == 422 and form.json()["error"] == said
    body = client.post("/v1/predict/tones", content=b"\x89PNG not a sound", headers={"content-type": "audio/wav"})
    assert body.status_code == 422 and body.json()["error"].startswith("cannot read the sound file (body): ")
    text = client.post("/v1/predict/tones", content=b"a text", headers={"content-type": "text/plain"})
    assert text.status_code == 415 and "curl -F sound=@clip.wav" in text.json()["error"]


def test_a_file_that_decodes_past_the_limit_is_refused_before_decoding(served, tmp_path: Path) -> None:
    client, _, _ = served
    silence = tmp_path / "silence.flac"  # 5 s of silence: a few kB of FLAC, 40,000 values decoded
    sf.write(silence, np.zeros(40_000, np.float32), 8000)
    assert silence.stat().st_size < LIMITS.body_bytes
    answer = client.post("/v1/predict/tones", files={"sound": ("silence.flac", silence.read_bytes())})
    assert answer.status_code == 413
    assert answer.json()["error"] == (
        "the sound file silence.flac (5.0 s: 40,000 values decoded) is over this server's limit of 32,768 values "
        "(a 16-bit WAV of the body's limit) — send a shorter clip, or start the server with a larger --max-body-mb")


def test_the_page_and_the_document_offer_the_upload(served) -> None:
    client, _, _ = served
    page = client.get("/").text
    assert 'data-takes="sound"' in page and 'accept="audio/*,.wav,.flac,.ogg"' in page
    body = client.get("/openapi.json").json()["paths"]["/v1/predict/tones"]["post"]["requestBody"]["content"]
    assert set(body) == {"multipart/form-data", "audio/*"}
