"""`udlc serve`'s routes for `udlc generate` and for graphs: a language model streams its tokens as server-sent
events as it makes them (with its key/value cache) and ends on the text `udlc generate` prints; seq2seq and token
labels answer that text at once; a graph (JSON arrays or predict's .npz) gets what `udlc predict` answers; every
bad request is a 4xx with the command's message, and none a 500.

Tiny hand-built files (tests/serve_models.py's way): each has the metadata udlc's exporter writes for its kind,
so the runtime's readers read them as they read exported files."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serve_models import graph_network, language_model, seq2seq, token_labeller
from udlc.errors import UdlcError
from udlc.runtime.generate import Asked
from udlc.runtime.http.app import build_app
from udlc.runtime.http.limits import Limits

LIMITS = Limits(body_bytes=64 * 1024, rows=100, seconds=10, prompt_chars=40, new_tokens=30, nodes=50, edges=200)
@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("generated")
    return {"tiny-lm": language_model(root / "lm" / "model.onnx"), "tiny-seq2seq": seq2seq(root / "s2s" / "model.onnx"),
            "tiny-labels": token_labeller(root / "labels" / "model.onnx"),
            "tiny-nodes": graph_network(root / "nodes" / "model.onnx", links=False),
            "tiny-links": graph_network(root / "links" / "model.onnx", links=True)}


@pytest.fixture(scope="module")
def app(files):
    return build_app(list(files.values()), LIMITS, max_batch=1)


@pytest.fixture(scope="module")
def client(app):
    from starlette.testclient import TestClient

    with TestClient(app) as c:
        yield c


def cli_generate(model: Path, *options: str) -> str:
    """What `udlc generate MODEL …` prints, its newline left off."""
    from click.testing import CliRunner

    from udlc.cli import main

    result = CliRunner().invoke(main, ["generate", str(model), *options])
    assert result.exit_code == 0, result.output
    return result.output.removesuffix("\n")


def events(text: str) -> list[tuple[str, dict]]:
    """A server-sent event stream as (event name, its JSON data)."""
    found = []
    for block in text.split("\n\n"):
        if block.strip():
            fields = dict(line.split(": ", 1) for line in block.split("\n"))
            found.append((fields.get("event", "message"), json.loads(fields["data"])))
    return found


# ---- a language model: tokens as they are made ----------------------------------------------------------------


@pytest.mark.parametrize("options", [{"temperature": 0}, {"temperature": 1.3, "seed": 7},
                                     {"temperature": 0.9, "top_k": 3, "seed": 2}])
def test_a_stream_sends_each_token_and_ends_on_what_udlc_generate_prints(client, files, options) -> None:
    """20 tokens past a context of 8: the cache's window restarts on the way, as the command's does."""
    flags = [x for k, v in options.items() for x in (f"--{k.replace('_', '-')}", str(v))]
    printed = cli_generate(files["tiny-lm"], "--prompt", "abc d", "--max-new-tokens", "20", *flags)
    answer = client.post("/v1/generate/tiny-lm", json={"prompt": "abc d", "max_new_tokens": 20, **options})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
    sent = events(answer.text)
    assert [name for name, _ in sent] == ["message"] * 20 + ["done"]
    assert all(len(data["text"]) == 1 for _, data in sent[:-1])  # a character a token
    assert "abc d" + "".join(data["text"] for _, data in sent[:-1]) == printed
    assert sent[-1][1]["text"] == printed and sent[-1][1]["tokens"] == 20
    for asked in ({"headers": {"accept": "application/json"}}, {"params": {"stream": "false"}}):
        whole = client.post("/v1/generate/tiny-lm", json={"prompt": "abc d", "max_new_tokens": 20, **options},
                            **asked)
        assert whole.json() == {"text": printed}


def test_each_event_is_made_when_asked_for_with_one_cached_step_a_token(app, files) -> None:
    """The stream is lazy: its first event costs the prompt's run only, each next one a single-token step on the
    cache (what `udlc generate` runs), and a client that stops reading stops the model."""
    from udlc.runtime.http import generating

    served = app.models["tiny-lm"]
    windows: list[int] = []
    session = served.reader.session

    class Counting:
        def __getattr__(self, name):
            return getattr(session, name)

        def run(self, names, feed):
            windows.append(feed["tokens"].shape[1])
            return session.run(names, feed)

    served.reader.session = Counting()
    try:
        stream = generating._events("abc", served.reader.stream("abc", Asked(6, 0.0)), 10, 6)
        next(stream)
        assert windows == [3]
        next(stream), next(stream)
        assert windows == [3, 1, 1]
    finally:
        served.reader.session = session


def test_a_stream_past_its_time_or_failing_ends_with_an_error_event(app) -> None:
    """Its status (200) is sent with the first token: what goes wrong later is the stream's last event."""
    from udlc.runtime.http import generating

    reader = app.models["tiny-lm"].reader
    late = [e.decode() for e in generating._events("abc", reader.stream("abc", Asked(5, 0.0)), 0, 5)]
    assert len(late) == 2 and late[1].startswith("event: error\n") and "--timeout" in late[1]

    def failing():
        yield "a"
        raise UdlcError("the model file went away")

    sent = events("".join(e.decode() for e in generating._events("abc", failing(), 10, 3)))
    assert sent == [("message", {"text": "a"}), ("error", {"error": "the model file went away"})]


def test_a_character_split_over_byte_tokens_is_sent_once_whole() -> None:
    """A byte token may end in half a character: its event's text is empty until the character is whole, and
    the pieces join to the decoded text, a last half character included (as U+FFFD, as the command prints it)."""
    from types import SimpleNamespace

    from udlc.data.text import ByteTokenizer
    from udlc.runtime.generate import LanguageModelFile

    byte_model = SimpleNamespace(tokenizer=ByteTokenizer())
    made = list("é€!".encode()) + [0xE2]
    pieces = list(LanguageModelFile._pieces(byte_model, iter(made)))  # type: ignore[arg-type]
    assert pieces == ["", "é", "", "", "€", "!", "", "\ufffd"]
    assert "".join(pieces) == ByteTokenizer().decode(made)


def bad(client, route: str, body, **headers):
    answer = client.post(route, content=body if isinstance(body, bytes) else json.dumps(body).encode(),
                         headers=headers)
    assert 400 <= answer.status_code < 500 and answer.headers["content-type"] == "application/json", answer.text
    return answer.status_code, answer.json()["error"]


def command_error(reader, prompt: str, asked: Asked = Asked()) -> str:
    with pytest.raises(UdlcError) as e:
        reader.answer(prompt, asked)
    return str(e.value)


def test_a_bad_prompt_gets_the_commands_message_before_any_token(client, app) -> None:
    lm = app.models["tiny-lm"].reader
    for prompt, asked in (("", {}), ("abz", {}), ("abc", {"beam": 2})):
        assert bad(client, "/v1/generate/tiny-lm", {"prompt": prompt, **asked}) == (
            422, command_error(lm, prompt, Asked(beam=asked.get("beam", 1))))
    s2s = app.models["tiny-seq2seq"].reader
    assert bad(client, "/v1/generate/tiny-seq2seq", {"prompt": "abx"}) == (422, command_error(s2s, "abx"))
    labels = app.models["tiny-labels"].reader
    assert bad(client, "/v1/generate/tiny-labels", {"prompt": ""}) == (422, command_error(labels, ""))


@pytest.mark.parametrize("body, status, words", [
    (b'{"prompt": ', 400, "not valid JSON"),
    ({"text": "abc"}, 422, "no option 'text' — a generate request takes prompt, max_new_tokens"),
    ({"max_new_tokens": 3}, 400, 'send {"prompt": "…"}'),
    ({"prompt": 5}, 400, 'send {"prompt": "…"}'),
    ({"prompt": "a" * 41}, 413, "the prompt (41 characters) is over this server's limit of 40 characters"),
    ({"prompt": "abc", "max_new_tokens": 31}, 413, "over this server's limit of 30 tokens — ask for fewer, or start "
                                                   "the server with a larger --max-new-tokens"),
    ({"prompt": "abc", "max_new_tokens": 0}, 422, "`max_new_tokens` is a whole number of 1 or more, not 0"),
    ({"prompt": "abc", "max_new_tokens": 2.5}, 422, "`max_new_tokens` is a whole number"),
    ({"prompt": "abc", "temperature": -1}, 422, "`temperature` is a number of 0 or more"),
    ({"prompt": "abc", "temperature": "hot"}, 422, "`temperature` is a number of 0 or more"),
    ({"prompt": "abc", "top_k": 0}, 422, "`top_k` is a whole number of 1 or more, not 0"),
    ({"prompt": "abc", "seed": -1}, 422, "`seed` is a whole number of 0 or more"),
    ({"prompt": "abc", "beam": 33}, 422, "`beam` is at most 32"),
])
def test_every_bad_generate_request_is_told_what_is_wrong(client, body, status, words) -> None:
    got, message = bad(client, "/v1/generate/tiny-lm", body)
    assert got == status and words in message, message


def test_seq2seq_and_token_labels_answer_what_udlc_generate_prints(client, files) -> None:
    for beam in (1, 3):
        printed = cli_generate(files["tiny-seq2seq"], "--prompt", "abcab", "--beam", str(beam))
        answer = client.post("/v1/generate/tiny-seq2seq", json={"prompt": "abcab", "beam": beam})
        assert answer.status_code == 200 and answer.json() == {"text": printed}
    printed = cli_generate(files["tiny-labels"], "--prompt", "cabba")
    assert len(printed) == 5
    assert client.post("/v1/generate/tiny-labels", json={"prompt": "cabba"}).json() == {"text": printed}


# ---- graphs: what `udlc predict` answers ------------------------------------------------------------------------

X = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, -2.0]]
EDGES = [[0, 1, 2, 3, 1], [1, 2, 0, 0, 0]]
PAIRS = [[0, 1, 3], [2, 3, 3]]


def write_graph(path: Path, **arrays) -> Path:
    np.savez(path, **{k: np.asarray(v) for k, v in arrays.items()})
    return path


def test_a_graph_as_json_or_npz_gets_what_predict_answers(client, app, tmp_path: Path) -> None:
    nodes = app.models["tiny-nodes"].reader
    graph = write_graph(tmp_path / "g.npz", x=X, edge_index=EDGES)
    printed = nodes.answer_file(graph)  # `udlc predict`'s CSV
    as_csv = {"accept": "text/csv"}
    assert client.post("/v1/predict/tiny-nodes", json={"x": X, "edge_index": EDGES}, headers=as_csv).text == printed
    assert client.post("/v1/predict/tiny-nodes", content=graph.read_bytes(), headers=as_csv).text == printed
    with graph.open("rb") as f:
        assert client.post("/v1/predict/tiny-nodes", files={"graph": ("g.npz", f)}, headers=as_csv).text == printed
    answers = client.post("/v1/predict/tiny-nodes", json={"x": X, "edge_index": EDGES}).json()["answers"]
    rows = [line.split(",") for line in printed.splitlines()[1:]]
    assert [a["prediction"] for a in answers] == [r[0] for r in rows]
    assert [round(a["probabilities"]["blue"], 6) for a in answers] == [float(r[2]) for r in rows]

    links = app.models["tiny-links"].reader
    scored = write_graph(tmp_path / "pairs.npz", x=X, edge_index=EDGES, pairs=PAIRS)
    printed = links.answer_file(scored)
    body = {"x": X, "edge_index": EDGES, "pairs": PAIRS}
    assert client.post("/v1/predict/tiny-links", json=body, headers=as_csv).text == printed
    assert client.post("/v1/predict/tiny-links", content=scored.read_bytes(), headers=as_csv).text == printed
    answers = client.post("/v1/predict/tiny-links", json=body).json()["answers"]
    assert [(a["source"], a["target"], f"{a['probability']:.6f}") for a in answers] == [
        tuple(int(c) if i < 2 else c for i, c in enumerate(line.split(","))) for line in printed.splitlines()[1:]]


def predict_error(reader, path: Path) -> str:
    with pytest.raises(UdlcError) as e:
        reader.answer_file(path)
    return str(e.value)


@pytest.mark.parametrize("model, arrays", [
    ("tiny-nodes", {"x": X, "edge_index": [[0, 9], [1, 0]]}),  # an edge to a node it lacks
    ("tiny-nodes", {"x": [[1.0, float("nan")]], "edge_index": [[0], [0]]}),
    ("tiny-nodes", {"x": [[1.0, 2.0, 3.0]], "edge_index": [[0], [0]]}),  # three features, not two
    ("tiny-nodes", {"x": X, "edge_index": [[0.5], [1.0]]}),
    ("tiny-nodes", {"x": X, "edge_index": [[0, 1, 2]]}),
    ("tiny-links", {"x": X, "edge_index": EDGES, "pairs": [[0], [7]]}),
])
def test_a_bad_graph_gets_the_message_predict_gives(client, app, tmp_path: Path, model, arrays) -> None:
    path = write_graph(tmp_path / "bad.npz", **arrays)
    expected = predict_error(app.models[model].reader, path)
    with path.open("rb") as f:
        assert bad(client, f"/v1/predict/{model}", f.read()) == (422, expected.replace(str(path), "the uploaded graph"))
    with path.open("rb") as f:
        answer = client.post(f"/v1/predict/{model}", files={"graph": ("bad.npz", f)})
    assert answer.status_code == 422 and answer.json()["error"] == expected.replace(str(path), "bad.npz")
    assert bad(client, f"/v1/predict/{model}", json.dumps(arrays).encode()) == (
        422, expected.replace(str(path), "the graph"))


def test_every_graph_request_is_bounded(client, tmp_path: Path) -> None:
    many = {"x": [[0.0, 0.0]] * 51, "edge_index": [[0], [1]]}
    assert bad(client, "/v1/predict/tiny-nodes", many)[0] == 413
    assert "--max-edges" in bad(client, "/v1/predict/tiny-nodes", {"x": X, "edge_index": [[0] * 201, [1] * 201]})[1]
    bomb = io.BytesIO()  # a small upload that unpacks to more than the body's limit
    np.savez_compressed(bomb, x=np.zeros((300, 2), np.float32), edge_index=np.zeros((2, 10_000), np.int64))
    assert len(bomb.getvalue()) < LIMITS.body_bytes
    status, message = bad(client, "/v1/predict/tiny-nodes", bomb.getvalue())
    assert status == 413 and "unpacked" in message
    assert bad(client, "/v1/predict/tiny-nodes", {"x": X, "edges": EDGES})[1].startswith("no array 'edges'")
    assert bad(client, "/v1/predict/tiny-links", {"x": X, "edge_index": EDGES})[0] == 400  # no pairs to score
    assert "leave --id out" in bad(client, "/v1/predict/tiny-nodes?id=node", {"x": X, "edge_index": EDGES})[1]
    assert bad(client, "/v1/predict/tiny-nodes", {"x": [[1, None]], "edge_index": EDGES}) == (
        422, "`x` holds a value that is no number (null, or a whole number beyond 64 bits)")


FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
scalars = st.none() | st.booleans() | st.integers(-(2 ** 70), 2 ** 70) | st.floats() | st.text(max_size=6)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4), max_leaves=20)
generate_bodies = st.fixed_dictionaries({}, optional={
    "prompt": st.text(alphabet="abcdefgh xyz", max_size=12) | scalars, "max_new_tokens": st.integers(-1, 40) | scalars,
    "temperature": st.floats(-1, 3) | scalars, "top_k": st.integers(-1, 12) | scalars, "seed": scalars,
    "beam": st.integers(0, 40) | scalars})
graph_bodies = st.fixed_dictionaries({}, optional={"x": values, "edge_index": values, "batch": values, "pairs": values,
                                                   "edge_weight": values})


@FUZZ
@given(route=st.sampled_from(["/v1/generate/tiny-lm", "/v1/generate/tiny-seq2seq", "/v1/generate/tiny-labels",
                              "/v1/predict/tiny-nodes", "/v1/predict/tiny-links"]),
       body=st.one_of(generate_bodies.map(json.dumps), graph_bodies.map(json.dumps)).map(str.encode)
       | st.binary(max_size=64) | st.just(b"PK\x03\x04garbage"),
       accept=st.sampled_from(["", "application/json"]))
def test_no_generate_or_graph_request_makes_the_server_fail(client, route: str, body: bytes, accept: str) -> None:
    answer = client.post(route, content=body, headers={"accept": accept})
    assert answer.status_code == 200 or 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    if answer.status_code != 200:
        assert answer.json()["error"]
    elif answer.headers["content-type"].startswith("text/event-stream"):
        assert events(answer.text)[-1][0] == "done", answer.text


def test_each_model_lists_its_friendly_route(client) -> None:
    listed = {m["name"]: m["routes"] for m in client.get("/v1/models").json()["models"]}
    assert listed["tiny-lm"] == ["/v2/models/tiny-lm/infer", "/v1/generate/tiny-lm"]
    assert listed["tiny-links"] == ["/v2/models/tiny-links/infer", "/v1/predict/tiny-links"]


def test_serve_help_shows_the_new_routes_with_a_curl_line() -> None:
    from click.testing import CliRunner

    from udlc.cli import main

    shown = CliRunner().invoke(main, ["serve", "--help"]).output
    for words in ("POST /v1/generate/N", "curl -N -d '{\"prompt\"", "curl -F graph=@graph.npz", "--max-new-tokens",
                  "--max-nodes"):
        assert words in shown
