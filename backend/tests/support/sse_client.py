"""A small server-sent-events reader for tests: an ``httpx`` stream read on a thread into a queue.

``SSEReader(url, params=..., headers=...)`` opens the stream at once; ``next(kind=None, timeout_s=...)``
returns the next :class:`SSE` (of ``kind`` if given, skipping others) or raises AssertionError;
``comments`` collects comment lines (heartbeats). ``close()`` ends the connection at once, as a browser
closing its EventSource does: the socket is shut down under the reading thread, so the server sees the
disconnect without waiting for its next heartbeat.
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class SSE:
    event: str
    data: str
    id: str | None = None
    retry: int | None = None

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class SSEReader:
    url: str
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    status_code: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    comments: list[str] = field(default_factory=list)
    received: list[SSE] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._queue: queue.Queue[SSE | BaseException | None] = queue.Queue()
        self._opened = threading.Event()
        self._closing = threading.Event()
        self._socket: socket.socket | None = None
        self._client = httpx.Client(timeout=httpx.Timeout(10, read=None))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._opened.wait(15):
            raise AssertionError(f"no response from {self.url} in 15 s")

    def _run(self) -> None:
        try:
            with self._client.stream("GET", self.url, params=self.params, headers=self.headers) as reply:
                self.status_code = reply.status_code
                self.response_headers = dict(reply.headers)
                if reply.status_code != 200:
                    self.body = reply.read().decode()
                    self._opened.set()
                    return
                stream = reply.extensions.get("network_stream")
                self._socket = stream.get_extra_info("socket") if stream is not None else None
                self._opened.set()
                fields: dict[str, str] = {}
                data: list[str] = []
                for line in reply.iter_lines():
                    if line == "":
                        if data or fields:
                            retry = fields.get("retry")
                            event = SSE(event=fields.get("event", "message"), data="\n".join(data),
                                        id=fields.get("id"), retry=int(retry) if retry else None)
                            self.received.append(event)
                            self._queue.put(event)
                        fields, data = {}, []
                    elif line.startswith(":"):
                        self.comments.append(line[1:].strip())
                    else:
                        name, _, value = line.partition(":")
                        value = value[1:] if value.startswith(" ") else value
                        if name == "data":
                            data.append(value)
                        else:
                            fields[name] = value
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            if not self._closing.is_set():
                self._queue.put(exc)
        finally:
            self._opened.set()
            self._queue.put(None)

    def next(self, kind: str | None = None, timeout_s: float = 60, where: Any = None) -> SSE:
        """The next event (of ``kind``, and for which ``where(event)`` is true, when given)."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind or 'event'} in {timeout_s:g} s; got "
                                     f"{[e.event for e in self.received][-20:]}")
            try:
                item = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if item is None:
                raise AssertionError(f"the stream ended before a {kind or 'event'} arrived")
            if isinstance(item, BaseException):
                raise AssertionError(f"the stream failed: {item!r}") from item
            if (kind is None or item.event == kind) and (where is None or where(item)):
                return item

    def close(self) -> None:
        self._closing.set()
        if self._socket is not None:
            try:  # wakes the reading thread out of its blocking read; closing the client alone does not
                self._socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed
        self._client.close()
        self._thread.join(10)

    def __enter__(self) -> "SSEReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
