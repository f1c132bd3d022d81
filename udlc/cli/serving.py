"""The commands over exported files: predict, generate, sample (each a served kind's reader, udlc.runtime.readers)
and serve (HTTP over the same readers, udlc.runtime.http). onnxruntime and numpy only; argument parsing only, as
in udlc.cli."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from udlc.cli import main
from udlc.errors import UdlcError


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("inputs", type=click.Path())
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the CSV here instead of stdout.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--id", "id_column", metavar="COLUMN",
              help="A CSV's column whose cells name the answers (default: each row's line in the file).")
def predict(model: str, inputs: str, output: str | None, device: str, id_column: str | None) -> None:
    """Predict with an exported MODEL.onnx on raw INPUTS (.csv, .npy, .npz; for a graph network a .npz graph
    with x, edge_index and, for several graphs, batch, or pairs to score; for a model trained on a folder of
    pictures, a picture or a folder of them; on sound clips, a WAV, FLAC or OGG file or a folder of them, decoded
    as training decoded them); onnxruntime only. A CSV gets one answer per row, first its line (or its --id cell);
    pictures and sound files one per file, first its path."""
    from udlc.runtime.readers import open_reader

    # the reader of the file's served kind: samples, texts, a graph file, pictures (udlc.runtime.readers)
    text = open_reader(model, "predict", device).answer_file(Path(inputs), id_column)
    if output:
        Path(output).write_text(text)
        click.echo(output)
    else:
        click.echo(text, nl=False)


@main.command()
@click.argument("model", type=click.Path())
@click.option("--prompt", required=True, help="The text to continue.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--temperature", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="0: always the most likely token (greedy).")
@click.option("--top-k", type=click.IntRange(min=1), help="Sample among the k most likely tokens only.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--beam", type=click.IntRange(min=1), default=1, show_default=True,
              help="seq2seq: hypotheses kept per step (1: greedy).")
@click.option("--no-cache", is_flag=True, help="Run the whole window for every token (slower; for comparison).")
@click.option("--stats", is_flag=True, help="Print tokens per second to stderr.")
def generate(model: str, prompt: str, max_new_tokens: int, temperature: float, top_k: int | None, seed: int,
             device: str, beam: int, no_cache: bool, stats: bool) -> None:
    """Continue PROMPT with a language model, map it to its target with an encoder–decoder (seq2seq), or
    label its every position (token_classification): MODEL.onnx, or a run folder (exported first if need
    be). onnxruntime and numpy only."""
    from udlc.runtime.generate import Asked
    from udlc.runtime.readers import open_reader

    reader = open_reader(_model_file(model), "generate", device)  # a language model, seq2seq, a token labeller
    reply = reader.answer(prompt, Asked(max_new_tokens, temperature, top_k, seed, beam, use_cache=not no_cache))
    click.echo(reply.text)
    if stats and reply.stats:
        click.echo(reply.stats, err=True)


def _model_file(model: str) -> Path:
    """MODEL.onnx as given, or a run folder's model.onnx (exported first if need be)."""
    path = Path(model)
    if path.is_dir():
        from udlc.runs import RunFolder

        onnx_file = RunFolder.open(path).onnx_file
        if not onnx_file.is_file():
            from udlc.exporter.onnx import export_run

            click.echo(f"exporting {onnx_file}", err=True)
            export_run(path)
        path = onnx_file
    return path


@main.command()
@click.argument("model", type=click.Path())
@click.option("-n", "count", type=click.IntRange(min=1), default=64, show_default=True, help="How many samples.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), default="samples.png", show_default=True,
              help="A .png (images in a grid, 2-D points plotted) or a .npy (the array, in the data's units).")
@click.option("--class", "label", type=int, help="Diffusion with labels: samples of this class (default: each "
              "class in turn).")
@click.option("--steps", type=click.IntRange(min=1), help="Diffusion: the steps the sampler visits (default: the "
              "model's).")
@click.option("--sampler", type=click.Choice(["ddpm", "ddim"]), help="Diffusion: the sampler (default: the model's).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
def sample(model: str, count: int, seed: int, output: str, label: int | None, steps: int | None,
           sampler: str | None, device: str) -> None:
    """New samples from a generative model (a VAE's decoder, a GAN's generator, a diffusion model's denoiser):
    MODEL.onnx, or a run folder (exported first if need be). onnxruntime and numpy only."""
    from udlc.runtime.readers import open_reader
    from udlc.runtime.sample import check_output, write_samples

    check_output(Path(output))
    file = open_reader(_model_file(model), "sample", device)
    samples = file.sample(count, seed, label, steps, sampler)
    columns = file.classes if file.classes and label is None else None  # a column per class
    click.echo(str(write_samples(samples, Path(output), file.value_range, columns)))


@main.command()
@click.argument("model", type=click.Path(exists=True))
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on (0.0.0.0: every one).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Server processes, each with its own sessions (and its own /metrics).")
@click.option("--max-batch", type=click.IntRange(min=1), default=32, show_default=True,
              help="The most samples of concurrent requests run as one onnxruntime call (1: no batching).")
@click.option("--max-wait-ms", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="How long a request waits for others to batch with.")
@click.option("--max-body-mb", type=click.FloatRange(min=0, min_open=True), default=16, show_default=True)
@click.option("--max-rows", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="The most rows, texts or samples in one request.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=16_000_000, show_default=True,
              help="The largest picture (width × height) a request may upload.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=30, show_default=True,
              help="Seconds a request may take before it is answered 503 (a token stream: before it ends).")
@click.option("--max-prompt-chars", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="The longest prompt a generate request may send.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=1_024, show_default=True,
              help="The most new tokens a generate request may ask for.")
@click.option("--max-nodes", type=click.IntRange(min=1), default=100_000, show_default=True,
              help="The most nodes of a graph in one request.")
@click.option("--max-edges", type=click.IntRange(min=1), default=1_000_000, show_default=True,
              help="The most edges (and node pairs to score) of a graph in one request.")
def serve(model: str, host: str, port: int, workers: int, max_batch: int, max_wait_ms: float, max_body_mb: float,
          max_rows: int, max_pixels: int, timeout: float, max_prompt_chars: int, max_new_tokens: int, max_nodes: int,
          max_edges: int) -> None:
    """Serve MODEL.onnx, or every .onnx file of a run folder (exported first if it has none), over HTTP with
    onnxruntime (no torch). A model is named by its spec's name (a run folder's other files add their stem:
    tiny-vae-encoder). Errors are 4xx answers {"error": message} with udlc predict's message. SIGTERM or
    Ctrl-C stops accepting, answers the requests in flight and exits 0.

    \b
    Routes (N: a model's name; see GET /v1/models):
      GET  /v2/health/live, /v2/health/ready, /v2/models/N, /v2/models/N/ready
      POST /v2/models/N/infer     Open Inference Protocol v2, JSON tensors:
        curl -d '{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [0.5, 0.2]}]}' \\
             localhost:8000/v2/models/N/infer
      POST /v1/predict/N          rows as JSON, or a CSV (Accept: text/csv answers predict's CSV):
        curl -d '{"rows": [{"color": "red", "a": 50.2, "b": -3}]}' localhost:8000/v1/predict/N
        curl --data-binary @rows.csv -H 'Content-Type: text/csv' localhost:8000/v1/predict/N
      POST /v1/predict/N          a picture, for a model trained on pictures:
        curl -F picture=@cat.png localhost:8000/v1/predict/N
      POST /v1/predict/N          a sound file (WAV, FLAC, OGG), for a model trained on sound clips:
        curl -F sound=@clip.wav localhost:8000/v1/predict/N
      POST /v1/predict/N          texts, for a text classifier:
        curl -d '{"texts": ["a fine film"]}' localhost:8000/v1/predict/N
      POST /v1/predict/N          a graph, for a graph network: JSON arrays, or predict's .npz file:
        curl -d '{"x": [[1, 0], [0, 1], [1, 1]], "edge_index": [[0, 1], [1, 2]]}' localhost:8000/v1/predict/N
        curl -F graph=@graph.npz localhost:8000/v1/predict/N
      POST /v1/sample/N           a generative model's samples, as .npy (Accept: image/png: a picture):
        curl -d '{"n": 16, "seed": 0}' -H 'Accept: image/png' -o samples.png localhost:8000/v1/sample/N
      POST /v1/generate/N         udlc generate: a language model's tokens as server-sent events, as made
                                  (Accept: application/json or ?stream=false: the text at once; seq2seq and
                                  token labels answer {"text": …} at once):
        curl -N -d '{"prompt": "Once upon", "max_new_tokens": 50, "temperature": 0.8, "top_k": 20, "seed": 0}' \\
             localhost:8000/v1/generate/N
        curl -d '{"prompt": "abc", "beam": 4}' localhost:8000/v1/generate/N
      GET  /v1/models             what is served, and where
      GET  /openapi.json          an OpenAPI 3.1 document of these routes, from each model's metadata:
                                  its columns and categories, request and answer schemas, examples
        curl localhost:8000/openapi.json
      GET  /docs                  that document as a page, with a curl line per example (GET /: a page
                                  to try each model)
      GET  /metrics               Prometheus: requests, in flight, latency, batch sizes
    """
    from udlc.runtime.http.app import serve as run_server
    from udlc.runtime.http.limits import MiB, Limits

    limits = Limits(int(max_body_mb * MiB), max_rows, max_pixels, timeout, max_prompt_chars, max_new_tokens, max_nodes,
                    max_edges)
    run_server(_served_files(Path(model)), host, port, workers, limits, max_batch, max_wait_ms)


def _served_files(path: Path) -> list[Path]:
    """MODEL.onnx, or every .onnx file of a run folder; a run folder with none is exported first, in a process of
    its own (export needs torch; the server never loads it)."""
    if not path.is_dir():
        return [path]
    files = sorted(path.glob("*.onnx"))
    if not files:
        import subprocess

        click.echo(f"exporting {path}", err=True)
        done = subprocess.run([sys.executable, "-m", "udlc", "export", str(path)], capture_output=True, text=True)
        if done.returncode != 0:
            raise UdlcError(f"cannot export {path} to serve it: {done.stderr.strip() or done.stdout.strip()}")
        files = sorted(path.glob("*.onnx"))
    if not files:
        raise UdlcError(f"{path} holds no .onnx file, and exporting it wrote none")
    return files
