"""What a request may hold and how a bad one is answered.

Every request is bounded (its body's bytes, its rows or samples, a picture's pixels, a prompt's characters
and new tokens, a graph's nodes and edges, its time) and every
mistake is an `HttpError`: a status and the message the CLI gives for the same mistake. The readers raise
UdlcError for what is wrong in an input; the app answers those 422 (understood, but not something the model
can answer), what cannot be parsed at all 400, and what is too large 413.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MiB = 1 << 20
_JSON_NAMES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


@dataclass(frozen=True)
class Limits:
    body_bytes: int = 16 * MiB  # a request's body
    rows: int = 10_000  # rows, texts or samples (a tensor's first axis) in one request
    pixels: int = 16_000_000  # a picture's width × height, checked before it is decoded
    seconds: float = 30.0  # a request's time, from its first byte read to its answer (a stream's last token)
    prompt_chars: int = 10_000  # a generate request's prompt (a language model reads its last `context` tokens)
    new_tokens: int = 1_024  # the tokens one generate request may ask for: each is a run of the model
    nodes: int = 100_000  # a graph's nodes in one request
    edges: int = 1_000_000  # a graph's edges (and node pairs to score) in one request


class HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def too_large(what: str, limit: int, unit: str, option: str, fix: str = "split it into several requests"
              ) -> HttpError:
    return HttpError(413, f"{what} is over this server's limit of {limit:,} {unit} — {fix}, or start the server "
                          f"with a larger {option}")


async def read_body(request: Any, limits: Limits) -> bytes:
    """The request's body, refused (413) as soon as it passes the limit: a client that lies in its
    Content-Length, or sends none, is cut off at the limit too."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.body_bytes:
        raise too_large(f"the body ({int(declared):,} bytes)", limits.body_bytes, "bytes", "--max-body-mb")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limits.body_bytes:
            raise too_large("the body", limits.body_bytes, "bytes", "--max-body-mb")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    """A JSON body; broken JSON (or JSON nested too deep to read) is a 400 naming where it broke."""
    if not body.strip():
        raise HttpError(400, "the body is empty — send a JSON object")
    try:
        return json.loads(body)
    except UnicodeDecodeError as e:
        raise HttpError(400, f"the body is not UTF-8 text (byte {e.start}) — send JSON as UTF-8") from None
    except json.JSONDecodeError as e:
        raise HttpError(400, f"the body is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    except RecursionError:
        raise HttpError(400, "the body is JSON nested too deep to read") from None


def json_object(body: bytes, keys: str) -> dict[str, Any]:
    """A JSON body that must be an object (`keys` says what it holds, for the message)."""
    value = parse_json(body)
    if not isinstance(value, dict):
        what = _JSON_NAMES.get(type(value), "value")
        raise HttpError(400, f"the body is a JSON {what}, not an object — send {keys}")
    return value
