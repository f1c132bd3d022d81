"""`udlc serve`: a Starlette app on uvicorn over the torch-free readers, for one or more exported files.

Routes: the Open Inference Protocol's (udlc.runtime.http.oip), each served kind's friendly route
(udlc.runtime.http.friendly), `GET /v1/models` (what is served where), `GET /metrics` (Prometheus), `GET /` (a page
to try the models), `GET /openapi.json` and `GET /docs` (the routes' OpenAPI document, and it as a page).
Every answer to a bad request is a 4xx with {"error": message}; an error of udlc's own is a 500 that says so,
logged with its traceback, and the server goes on. Each request is logged on one line: method, path, status,
milliseconds. The work of a request (reading rows, running the session) runs on a worker thread, so requests
to one model arrive together at its batching session.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import time
from pathlib import Path
from typing import Any

from udlc.errors import UdlcError
from udlc.runtime.http import friendly, generating, oip
from udlc.runtime.http.limits import HttpError, Limits, json_object, read_body
from udlc.runtime.http.models import Served, open_models

log = logging.getLogger("udlc.serve")


def build_app(paths: list[Path], limits: Limits = Limits(), max_batch: int = 32, max_wait_ms: float = 2.0) -> Any:
    """The ASGI app serving the files at `paths`, each opened now (a file that is no model fails here, before
    the server listens)."""
    import anyio.to_thread
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    registry = CollectorRegistry()  # the app's own: a process (a test) may build many apps
    requests = Counter("udlc_requests", "Requests answered", ["method", "route", "status"], registry=registry)
    latency = Histogram("udlc_request_seconds", "Time to answer a request", ["route"], registry=registry,
                        buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))
    in_flight = Gauge("udlc_requests_in_flight", "Requests being answered now (this one included)", registry=registry)
    batch_sizes = Histogram("udlc_batch_size", "Samples in each onnxruntime call", ["model"], registry=registry,
                            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096))
    models = open_models(paths, max_batch, max_wait_ms / 1000,
                         lambda name, n: batch_sizes.labels(model=name).observe(n))

    def model(request: Request) -> Served:
        name = request.path_params["name"]
        if name not in models:
            raise HttpError(404, f"no model named {name[:80]!r} here — this server serves {', '.join(models)}")
        return models[name]

    async def work(fn: Any) -> Any:
        """fn on a worker thread, where the session runs: the event loop goes on reading other requests, and
        past the time limit the client is answered while the thread's result is dropped (onnxruntime cannot
        be interrupted)."""
        try:
            return await anyio.to_thread.run_sync(fn, abandon_on_cancel=True)
        except Exception as e:
            if not type(e).__module__.startswith("onnxruntime"):
                raise
            # values the graph cannot take (an OIP client's token id out of the vocabulary)
            raise HttpError(422, f"the model cannot run on these inputs: {(str(e).splitlines() or [''])[0][:300]}"
                            ) from None

    def answer_json(body: Any, status: int = 200) -> Response:
        return Response(_json(body), status, media_type="application/json")

    async def live(request: Request) -> Response:
        return answer_json({"live": True})

    async def ready(request: Request) -> Response:
        return answer_json({"ready": True})

    async def metadata(request: Request) -> Response:
        return answer_json(oip.metadata(model(request)))

    async def model_ready(request: Request) -> Response:
        return answer_json({"name": model(request).name, "ready": True})

    async def infer(request: Request) -> Response:
        served = model(request)
        with anyio.fail_after(limits.seconds):  # the body's reading included: a slow client is bounded too
            body = json_object(await read_body(request, limits), '{"inputs": [{name, datatype, shape, data}, …]}')
            feed, names = oip.infer_feed(served, body, limits)
            values = await work(lambda: served.session.run(names, feed))
        return answer_json(oip.infer_answer(served, body.get("id"), names, values))

    async def friendly_route(request: Request) -> Response:
        served = model(request)
        if served.route != request.url.path:
            where = f"POST {served.route} or " if served.route else ""
            raise HttpError(404, f"'{served.name}' serves {served.kind.description}: this server answers for it at "
                                 f"{where}POST /v2/models/{served.name}/infer")
        with anyio.fail_after(limits.seconds):
            if served.kind.takes == "prompt":  # `udlc generate`: tokens as server-sent events, or the text at once
                return await generating.answer(served, request, limits, work)
            if served.kind.takes == "draws":  # `udlc sample`: a .npy file, or a PNG where asked for
                png = friendly.PNG in request.headers.get("accept", "")
                asked = json_object(await read_body(request, limits) or b"{}", '{"n": 16, "seed": 0}')
                drawn = await work(friendly.prepare_draws(served, asked, limits, png))
                return Response(drawn, media_type=friendly.PNG if png else friendly.NPY)
            run, picture = await friendly.prepare(served, request, limits)
            predictions = await work(run)
        media, body = friendly.answer(predictions, "text/csv" in request.headers.get("accept", ""),
                                      "id" in request.query_params, picture)
        return Response(body, media_type=media) if media == friendly.CSV else answer_json(body)

    async def listing(request: Request) -> Response:
        return answer_json({"models": [{"name": m.name, "file": m.file.path.name, "serves": m.kind.description,
                                        "routes": [f"/v2/models/{m.name}/infer"] + ([m.route] if m.route else [])}
                                       for m in models.values()]})

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    from udlc.runtime.http.page import POLICY, page

    home_page = page(models).encode()  # built once: the models served do not change while the server runs

    async def home(request: Request) -> Response:
        """A page to try each model in a browser (udlc.runtime.http.page)."""
        return Response(home_page, media_type="text/html; charset=utf-8", headers={"Content-Security-Policy": POLICY})

    from udlc.runtime.http import docs as api_page
    from udlc.runtime.http import openapi

    spec = openapi.document(models, limits)  # built once, as the page is, from the same metadata
    spec_json, docs_page = _json(spec), api_page.docs_page(spec).encode()

    async def openapi_json(request: Request) -> Response:
        return Response(spec_json, media_type="application/json")

    async def docs(request: Request) -> Response:
        """The document as a page (udlc.runtime.http.docs)."""
        return Response(docs_page, media_type="text/html; charset=utf-8",
                        headers={"Content-Security-Policy": api_page.POLICY})

    routes = [Route("/v2/health/live", live), Route("/v2/health/ready", ready),
              Route("/v2/models/{name}", metadata), Route("/v2/models/{name}/ready", model_ready),
              Route("/v2/models/{name}/infer", infer, methods=["POST"]),
              # each kind's friendly route (ServedKind.route), for the kinds of the files served here
              *(Route(f"{route}/{{name}}", friendly_route, methods=["POST"])
                for route in sorted({m.kind.route for m in models.values() if m.route})),
              Route("/v1/models", listing), Route("/metrics", metrics), Route("/", home),
              Route("/openapi.json", openapi_json), Route("/docs", docs)]

    class Measured:
        """Logs each request on one line and counts it (by route, not path: a label per typo would grow)."""

        def __init__(self, app: Any):
            self.app = app
            self.models: dict[str, Served] = {}  # what it serves, and its metrics: for `serve` and the tests
            self.registry: Any = None

        async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return await self.app(scope, receive, send)
            start, status = time.perf_counter(), [500]

            async def send_seen(message: dict) -> None:
                if message["type"] == "http.response.start":
                    status[0] = message["status"]
                await send(message)

            in_flight.inc()
            try:
                await self.app(scope, receive, send_seen)
            except Exception:  # answered 500 already (_internal_error): the traceback is for the log
                log.exception("udlc: internal error in %s %s", scope["method"], scope["path"])
            finally:
                in_flight.dec()
            route = _route_of(scope, routes)
            seconds = time.perf_counter() - start
            requests.labels(scope["method"], route, str(status[0])).inc()
            latency.labels(route).observe(seconds)
            log.info("%s %s %d %.1f ms", scope["method"], scope["path"], status[0], seconds * 1000)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any):
        yield
        for served in models.values():  # after uvicorn has drained the requests in flight
            served.close()

    handlers = {HttpError: _error, UdlcError: _error, HTTPException: _error, TimeoutError: _error,
                Exception: _internal_error}
    app = Measured(Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers))  # type: ignore[arg-type]
    app.models, app.registry = models, registry
    return app


async def _error(request: Any, e: Exception) -> Any:
    """A bad request's answer: {"error": message} with its status."""
    from starlette.exceptions import HTTPException
    from starlette.responses import Response

    if isinstance(e, HttpError):
        status, message = e.status, e.message
    elif isinstance(e, UdlcError):  # a reader's message about the input: what `udlc predict` says
        status, message = 422, str(e)
    elif isinstance(e, HTTPException):  # Starlette's own: an unknown path, a wrong method
        status, message = e.status_code, str(e.detail)
    else:  # TimeoutError: anyio.fail_after's, past --timeout
        status, message = 503, "the request took longer than this server's limit (--timeout) — send fewer rows"
    return Response(_json({"error": message}), status, media_type="application/json")


async def _internal_error(request: Any, e: Exception) -> Any:
    from starlette.responses import Response

    return Response(_json({"error": f"internal error: {type(e).__name__} — this is a bug in udlc"}), 500,
                    media_type="application/json")


def _route_of(scope: dict, routes: list[Any]) -> str:
    """The route's pattern (/v2/models/{name}/infer) for metrics: paths would be a label per model and typo."""
    from starlette.routing import Match

    for route in routes:
        if route.matches(scope)[0] != Match.NONE:
            return route.path
    return "unknown"


def _json(body: Any) -> bytes:
    """JSON text, with NaN and infinity (a model's overflowing answer) as null: JSON has no word for them."""
    try:
        return json.dumps(body, allow_nan=False, ensure_ascii=False).encode()
    except ValueError:
        return json.dumps(_finite(body), ensure_ascii=False).encode()


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


SETTINGS = "UDLC_SERVE_SETTINGS"  # how `--workers N` hands each worker process what to serve


def _log_requests() -> None:
    logging.basicConfig(format="%(message)s", level=logging.INFO)
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)  # a request's bad values are answered 422: not an error to log


def _exit_cleanly(sig: int, frame: Any) -> None:
    raise SystemExit(0)


def app_from_environment() -> Any:
    """The app a uvicorn worker process builds (`--workers N`: uvicorn imports this factory in each)."""
    settings = json.loads(os.environ[SETTINGS])
    _log_requests()  # a worker is a fresh process: its log lines need the handler `serve` set up in the parent
    return build_app([Path(p) for p in settings["paths"]], Limits(**settings["limits"]), settings["max_batch"],
                     settings["max_wait_ms"])


def serve(paths: list[Path], host: str, port: int, workers: int, limits: Limits, max_batch: int,
          max_wait_ms: float) -> None:
    """Serve until SIGTERM or Ctrl-C: uvicorn then stops accepting, answers the requests in flight, and returns."""
    import dataclasses

    import uvicorn

    _log_requests()
    app = build_app(paths, limits, max_batch, max_wait_ms)  # a file that cannot be served fails before listening
    for served in app.models.values():
        routes = [f"/v2/models/{served.name}/infer"] + ([served.route] if served.route else [])
        log.info("serving %s (%s: %s) at %s", served.name, served.file.path.name, served.kind.description,
                 ", ".join(f"http://{host}:{port}{r}" for r in routes))
    options = {"host": host, "port": port, "access_log": False, "log_level": "info",
               "timeout_graceful_shutdown": int(limits.seconds) + 5}
    # uvicorn drains the requests in flight on SIGTERM or Ctrl-C, then raises the signal again for the handler it
    # found: this one makes that a clean exit (0), where Python's defaults would report a kill or an interrupt.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_cleanly)
    if workers == 1:
        uvicorn.run(app, **options)
        return
    os.environ[SETTINGS] = json.dumps({"paths": [str(p.resolve()) for p in paths],
                                       "limits": dataclasses.asdict(limits), "max_batch": max_batch,
                                       "max_wait_ms": max_wait_ms})
    uvicorn.run(f"{__name__}:app_from_environment", factory=True, workers=workers, **options)
