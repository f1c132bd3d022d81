"""`GET /docs`: the server's OpenAPI document (udlc.runtime.http.openapi) as a page — each route with its
description, a curl line made from its example, and its request's and answer's schemas. Rendered here once, as
HTML: no script, nothing fetched from elsewhere (its Content-Security-Policy says so); everything taken from the
document (model names, columns, categories) is escaped.
"""

from __future__ import annotations

import html
import json
import shlex
from typing import Any

JSON = "application/json"
# /docs runs no script and shows no picture: only its own inline style
POLICY = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def docs_page(spec: dict[str, Any]) -> str:
    """/docs: each route with its description, a curl line per example, and its request's and answer's schemas."""
    parts = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            parts.append(f'<section><h2><span class="m">{method.upper()}</span> <code>{_e(path)}</code></h2>'
                         f'<p>{_e(op["summary"])}. {_e(op.get("description", ""))}</p>')
            for media, content in op.get("requestBody", {}).get("content", {}).items():
                parts.append(f"<h3>request: <code>{_e(media)}</code></h3>")
                if media == JSON or "example" in content:
                    parts.append(f'<pre class="curl">{_e(_curl(method, path, media, content.get("example")))}</pre>')
                parts.append(f"<details><summary>schema</summary><pre>{_e(_dump(content['schema']))}</pre></details>")
            if method == "get":
                parts.append(f'<pre class="curl">{_e(_curl(method, path, "", None))}</pre>')
            for status, answer in op["responses"].items():
                for media, content in answer.get("content", {}).items():
                    parts.append(f"<details><summary>answer {status}: <code>{_e(media)}</code></summary>"
                                 f"<pre>{_e(_dump(content['schema']))}</pre></details>")
            parts.append("</section>")
    return _DOCS.replace("<!--about-->", _e(spec["info"]["description"])).replace("<!--routes-->", "\n".join(parts))


def _curl(method: str, path: str, media: str, example: Any) -> str:
    url = shlex.quote(f"http://127.0.0.1:8000{path}")
    if method == "get":
        return f"curl {url}"
    if media == "multipart/form-data":
        return f"curl {url} " + " ".join(f"-F {k}=@{shlex.quote(v)}" for k, v in (example or {}).items())
    if media != JSON:
        data = example if isinstance(example, str) else "@file"
        return f"curl {url} -H 'Content-Type: {media}' --data-binary {shlex.quote(data)}"
    stream = "-N " if "/v1/generate/" in path else ""
    return f"curl {stream}{url} -H 'Content-Type: application/json' -d {shlex.quote(json.dumps(example))}"


def _dump(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


_DOCS = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>udlc serve: API</title>
<style>
body { font: 15px/1.45 system-ui, sans-serif; max-width: 60rem; margin: 1.5rem auto; padding: 0 1rem; }
h2 { font-size: 1.05rem; margin: 0 0 .3rem; } h3 { font-size: .9rem; margin: .6rem 0 .2rem; color: #4a5565; }
section { border: 1px solid #d6dbe2; border-radius: 8px; padding: .8rem 1rem; margin: .8rem 0; }
.m { background: #2458c6; color: white; border-radius: 4px; padding: 0 .35rem; font-size: .85rem; }
pre { background: #f6f8fa; padding: .5rem; border-radius: 5px; overflow-x: auto; margin: .2rem 0; }
pre.curl { background: #1c2430; color: #e8edf4; white-space: pre-wrap; word-break: break-all; }
code { background: #eef1f5; padding: 0 .25rem; border-radius: 3px; }
</style></head>
<body>
<h1>udlc serve: the API</h1>
<p><!--about--> The document itself: <a href="openapi.json">openapi.json</a> (OpenAPI 3.1); a page to try the
models: <a href="./">/</a>. The curl lines assume the server at 127.0.0.1:8000.</p>
<!--routes-->
</body></html>
"""
