"""Concurrent requests to one model run as one onnxruntime call.

A `BatchingSession` stands in for a reader's onnxruntime session: the readers' own code (udlc.runtime.predict,
udlc.runtime.text) calls `run` from a request's worker thread as it would on the session, and the call waits
while a collector thread gathers the calls that arrive within `max_wait` (up to `max_batch` samples), stacks
those whose inputs agree in everything but their first axis, runs them once and hands each its own rows back.
Only kinds whose inputs' first axis holds independent samples (ServedKind.batches) are batched, so a sample's
answer does not depend on its neighbours; calls that differ (other outputs asked, pictures of another size,
texts padded to another length) run in separate calls of the same round.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class _Call:
    outputs: tuple[str, ...] | None
    feed: dict[str, np.ndarray]
    samples: int  # the first axis of its inputs
    done: threading.Event = field(default_factory=threading.Event)
    result: list[np.ndarray] | None = None
    error: BaseException | None = None

    def key(self) -> tuple:
        """What calls run together must share: the outputs asked and each input's dtype and sample shape."""
        return self.outputs, tuple((name, a.dtype.str, a.shape[1:]) for name, a in sorted(self.feed.items()))


class BatchingSession:
    """An onnxruntime session whose `run` batches concurrent calls; everything else is the session's."""

    def __init__(self, session: Any, max_batch: int, max_wait: float, observe: Callable[[int], None]):
        self._session, self.max_batch, self.max_wait, self._observe = session, max_batch, max_wait, observe
        self._calls: queue.Queue[_Call | None] = queue.Queue()
        self._thread = threading.Thread(target=self._collect, name="udlc-batcher", daemon=True)
        self._thread.start()

    def __getattr__(self, name: str) -> Any:  # get_inputs, get_outputs, get_modelmeta: the session's own
        return getattr(self._session, name)

    def run(self, output_names: list[str] | None, feed: dict[str, Any], *args: Any) -> list[np.ndarray]:
        arrays = {name: np.asarray(value) for name, value in feed.items()}
        sizes = {a.shape[0] if a.ndim else -1 for a in arrays.values()}
        if args or len(sizes) != 1 or min(sizes) < 1:  # no common sample axis: nothing to batch it with
            return self._run(output_names, arrays, 1)
        call = _Call(tuple(output_names) if output_names else None, arrays, sizes.pop())
        self._calls.put(call)
        call.done.wait()
        if call.error is not None:
            raise call.error
        assert call.result is not None
        return call.result

    def close(self) -> None:
        """Stops the collector once the calls already queued are answered."""
        self._calls.put(None)
        self._thread.join(timeout=5)

    def _run(self, outputs: tuple[str, ...] | list[str] | None, feed: dict[str, np.ndarray], samples: int
             ) -> list[np.ndarray]:
        self._observe(samples)
        return self._session.run(list(outputs) if outputs else None, feed)

    def _collect(self) -> None:
        while True:
            first = self._calls.get()
            if first is None:
                return
            calls, samples, stop = [first], first.samples, False
            deadline = time.monotonic() + self.max_wait
            while samples < self.max_batch:  # what arrives before the deadline joins this round
                try:
                    call = self._calls.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if call is None:
                    stop = True
                    break
                calls.append(call)
                samples += call.samples
            for group in self._groups(calls):
                self._answer(group)
            if stop:
                return

    def _groups(self, calls: list[_Call]) -> list[list[_Call]]:
        """Calls that can be stacked, in rounds of at most max_batch samples (a larger call runs alone)."""
        by_key: dict[tuple, list[list[_Call]]] = {}
        for call in calls:
            rounds = by_key.setdefault(call.key(), [[]])
            if rounds[-1] and sum(c.samples for c in rounds[-1]) + call.samples > self.max_batch:
                rounds.append([])
            rounds[-1].append(call)
        return [group for rounds in by_key.values() for group in rounds]

    def _answer(self, group: list[_Call]) -> None:
        if len(group) > 1:
            try:
                feed = {name: np.concatenate([c.feed[name] for c in group]) for name in group[0].feed}
                out = self._run(group[0].outputs, feed, sum(c.samples for c in group))
            except Exception:  # one call's values (a token id out of range) must not fail the others: alone
                for call in group:
                    self._answer([call])
                return
            start = 0
            for call in group:
                call.result = [a[start:start + call.samples] for a in out]
                start += call.samples
                call.done.set()
            return
        (call,) = group
        try:
            call.result = self._run(call.outputs, call.feed, call.samples)
        except Exception as e:  # onnxruntime's error goes to its caller, who turns it into an answer
            call.error = e
        finally:
            call.done.set()
