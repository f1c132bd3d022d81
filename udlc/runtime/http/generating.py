"""`POST /v1/generate/{name}`: `udlc generate` over HTTP, for a language model, an encoder–decoder (seq2seq) or
a token labeller.

The request is JSON: {"prompt": "…"} and the command's options by their names — max_new_tokens, temperature,
top_k, seed, beam — each optional, with the command's defaults (max_new_tokens: 200, or the server's
--max-new-tokens where lower). A language model's continuation streams as
server-sent events, one `data: {"text": piece}` event per new token as the model makes it (with the file's
key/value cache, from the same token iterator the command consumes: udlc.runtime.generate), then
`event: done` with `data: {"text": what udlc generate prints, "tokens": n, "seconds": s}`. A request that asks
for JSON (`Accept: application/json`, or `?stream=false`), and every request to the other kinds, is answered
at once: {"text": what `udlc generate` prints}. A bad request is a 4xx with the command's message, before any
event is sent; a stream that fails or runs past --timeout afterwards ends with `event: error`,
`data: {"error": message}` (its status, 200, is already sent).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from typing import Any

from udlc.runtime.generate import Asked
from udlc.runtime.http.limits import HttpError, Limits, json_object, read_body, too_large
from udlc.runtime.http.models import Served
from udlc.tasks.served import NEXT_TOKEN

EVENTS = "text/event-stream"
OPTIONS = ("prompt", "max_new_tokens", "temperature", "top_k", "seed", "beam")
MAX_BEAM = 32  # hypotheses kept per step: each step runs the model on every one


def asked_of(body: dict[str, Any], limits: Limits) -> tuple[str, Asked]:
    """The prompt and the command's options from a request's JSON object, each checked as the command's
    option is."""
    unknown = sorted(set(body) - set(OPTIONS))
    if unknown:
        raise HttpError(422, f"no option {unknown[0][:40]!r} — a generate request takes {', '.join(OPTIONS)}")
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise HttpError(400, 'send {"prompt": "…"}: the text to continue (and max_new_tokens, temperature, top_k, '
                             "seed or beam where you want other than the defaults)")
    if len(prompt) > limits.prompt_chars:
        raise too_large(f"the prompt ({len(prompt):,} characters)", limits.prompt_chars, "characters",
                        "--max-prompt-chars", "send a shorter one")
    default = Asked()
    new = _whole(body, "max_new_tokens", min(default.max_new_tokens, limits.new_tokens), 1)  # as the command's
    if new > limits.new_tokens:
        raise too_large(f"max_new_tokens ({new:,})", limits.new_tokens, "tokens", "--max-new-tokens", "ask for fewer")
    temperature = body.get("temperature", default.temperature)
    if type(temperature) not in (int, float) or not math.isfinite(temperature) or temperature < 0:
        raise HttpError(422, f"`temperature` is a number of 0 or more (0: greedy), not {json.dumps(temperature)[:40]}")
    top_k = None if body.get("top_k") is None else _whole(body, "top_k", 1, 1)
    seed = _whole(body, "seed", default.seed, 0)
    if seed >= 2 ** 64:
        raise HttpError(422, "`seed` is below 2**64")
    beam = _whole(body, "beam", default.beam, 1)
    if beam > MAX_BEAM:
        raise HttpError(422, f"`beam` is at most {MAX_BEAM} here, not {beam:,}")
    return prompt, Asked(new, float(temperature), top_k, seed, beam)


def _whole(body: dict[str, Any], key: str, default: int, least: int) -> int:
    value = body.get(key, default)
    if type(value) is not int or value < least:
        raise HttpError(422, f"`{key}` is a whole number of {least} or more, not {json.dumps(value)[:40]}")
    return value


async def answer(model: Served, request: Any, limits: Limits, work: Any) -> Any:
    """The request's answer: a stream of events, or the whole text as JSON. `work(fn)` runs fn on a worker
    thread (the app's: a model's error there is a 422)."""
    from starlette.responses import Response, StreamingResponse

    body = json_object(await read_body(request, limits), '{"prompt": "…", "max_new_tokens": 50, …}')
    prompt, asked = asked_of(body, limits)
    reader = model.reader
    accept = request.headers.get("accept", "")
    wants_json = request.query_params.get("stream", "").lower() in ("false", "0", "no") or (
        "application/json" in accept and EVENTS not in accept)
    if model.kind.name != NEXT_TOKEN or wants_json:
        reply = await work(lambda: reader.answer(prompt, asked))  # the command's own path
        return Response(json.dumps({"text": reply.text}, ensure_ascii=False), media_type="application/json")
    pieces = reader.stream(prompt, asked)  # checks the prompt (a 4xx) before the response starts
    return StreamingResponse(_events(prompt, pieces, limits.seconds, asked.max_new_tokens), media_type=EVENTS,
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _events(prompt: str, pieces: Iterator[str], seconds: float, tokens_asked: int) -> Iterator[bytes]:
    """The stream's events, each made on a worker thread (Starlette iterates a plain iterator there), so the
    server answers other requests between tokens. The time limit is checked between tokens: a token's step
    cannot be interrupted. A language model makes every token asked for (it has no end of text); a last half
    character, held back, comes after them as one more piece."""
    start = time.perf_counter()
    text, tokens = prompt, 0
    try:
        for piece in pieces:
            text += piece
            tokens += 1
            yield _event({"text": piece})
            if time.perf_counter() - start > seconds:
                yield _event({"error": f"the stream took longer than this server's limit ({seconds:g} s, --timeout) "
                                       f"after {tokens} tokens — ask for fewer (max_new_tokens)"}, "error")
                return
    except Exception as e:  # the status (200) is sent: the client is told in the stream, and the log has the rest
        import logging

        logging.getLogger("udlc.serve").exception("udlc: a generate stream failed")
        message = str(e) if type(e).__module__.startswith(("udlc", "onnxruntime")) else \
            f"internal error: {type(e).__name__} — this is a bug in udlc"
        yield _event({"error": message.splitlines()[0][:300] if message else type(e).__name__}, "error")
        return
    yield _event({"text": text, "tokens": tokens_asked, "seconds": round(time.perf_counter() - start, 4)}, "done")


def _event(data: dict[str, Any], name: str | None = None) -> bytes:
    """One server-sent event: JSON data on one line (JSON escapes newlines, so a piece cannot end the event)."""
    return ((f"event: {name}\n" if name else "") + f"data: {json.dumps(data, ensure_ascii=False)}\n\n").encode()
