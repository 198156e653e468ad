"""uvicorn's httptools protocol with one socket write per predict answer (``python -m runtime`` serves with it).

uvicorn writes a response's head when the app sends ``http.response.start`` and its body at
``http.response.body``; with uvloop each ``transport.write`` is a ``send`` system call and, for a small answer, a
TCP segment of its own (the client reads twice). ``OneWriteHttpTools`` offers the app an ASGI extension,
``scope["extensions"]["mldeploy.one_write"]``: ``await one_write(send, start, body)`` sends both messages through
uvicorn's own ``send`` (its header checks, keep-alive and completion bookkeeping unchanged), the head held back
and written with the body in one ``writelines`` (one ``writev``). With the uvicorn this was written against
(``DIRECT_VERSIONS``), a plain answer skips ``send`` altogether: ``HeldHead.write_direct`` builds the head as
``send`` would (status line, uvicorn's default headers, the answer's headers lower-cased, ``connection: close``
when the connection will not be kept alive), each header line checked with uvicorn's own patterns once per
distinct header and kept, and does ``send``'s bookkeeping (response started and complete, the cycle's event set,
the connection closed unless kept alive, ``on_response``). Anything else — another uvicorn, an answer with a
``Connection`` or ``Transfer-Encoding`` header, a ``Content-Length`` that is not the body's, a paused or gone
connection, uvicorn's access log on — goes through ``send``. Only the predict fast path
(``runtime.http.fastpath``) uses it, for an answer whose body is complete; every other response is written as
uvicorn writes it. Without httptools (``http: h11``) uvicorn's "auto" protocol serves and no extension is offered.
"""

from __future__ import annotations

import inspect
from typing import Any

import uvicorn
from uvicorn.protocols.http import httptools_impl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

EXTENSION = "mldeploy.one_write"
DIRECT_VERSIONS = ("0.54.",)  # uvicorn releases whose RequestResponseCycle.send write_direct reproduces
_CYCLE_PARAMS = {"self", "scope", "transport", "flow", "logger", "access_logger", "access_log", "default_headers",
                 "message_event", "expect_100_continue", "keep_alive", "on_response"}


def direct_supported() -> bool:
    """True when this uvicorn is one ``write_direct`` was checked against (version and the cycle's shape)."""
    try:
        params = set(inspect.signature(RequestResponseCycle.__init__).parameters)
    except (TypeError, ValueError):
        return False
    return (uvicorn.__version__.startswith(DIRECT_VERSIONS) and params == _CYCLE_PARAMS
            and all(hasattr(httptools_impl, n) for n in ("STATUS_LINE", "HEADER_RE", "HEADER_VALUE_RE")))


DIRECT = direct_supported()
_STATUS_LINE: dict[int, bytes] = getattr(httptools_impl, "STATUS_LINE", {})
_BAD_NAME = getattr(httptools_impl, "HEADER_RE", None)
_BAD_VALUE = getattr(httptools_impl, "HEADER_VALUE_RE", None)
_SPECIAL = frozenset({b"content-length", b"transfer-encoding", b"connection"})
_LINES_MAX = 256  # distinct header lines kept (the answers' constant headers; per-request values are not kept)
_lines: dict[tuple[bytes, bytes], bytes] = {}  # (name, value) -> b"name: value\r\n", checked as uvicorn checks
_names: dict[bytes, bytes] = {}  # header name -> lower-cased, for names send's pattern accepts
_PER_REQUEST = frozenset({b"x-request-id", b"content-length", b"x-ratelimit-remaining", b"x-ratelimit-reset"})
_defaults: list[tuple[Any, bytes]] = [(None, b"")]  # (uvicorn's default header list, its lines): that list is
# replaced each second (the Date header), the pair swapped at once


def _line(name: bytes, value: bytes) -> bytes | None:
    """``name: value\r\n`` as ``send`` writes it, or None where ``send`` must handle the header itself (it raises
    for an invalid one, and reads Content-Length, Transfer-Encoding and Connection)."""
    if _BAD_NAME.search(name) or _BAD_VALUE.search(value):  # type: ignore[union-attr]
        return None
    name = name.lower()
    if name in _SPECIAL:
        return None
    return b"%s: %s\r\n" % (name, value)


def _default_lines(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """uvicorn's default headers (Server, Date, ``--header``) as lines, or None where ``send`` must write them."""
    known, lines = _defaults[0]
    if known is headers:
        return lines
    out = []
    for name, value in headers:
        line = _line(name, value)
        if line is None:
            return None
        out.append(line)
    lines = b"".join(out)
    _defaults[0] = (headers, lines)
    return lines


class HeldHead:
    """A connection's transport as its request cycles see it: ``write`` passes through, except the one write
    after ``hold()`` (a response head), which goes out with the next write or before ``close``."""

    __slots__ = ("head", "holding", "transport")

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.head: bytes | None = None
        self.holding = False

    def write(self, data: bytes) -> None:
        head = self.head
        if head is not None:
            self.head = None
            self.transport.writelines((head, data))
        elif self.holding:
            self.holding = False
            self.head = data
        else:
            self.transport.write(data)

    def flush(self) -> None:
        """Write a held head on its own (dropped if the connection is closing: its client has gone)."""
        self.holding = False
        head, self.head = self.head, None
        if head is not None and not self.transport.is_closing():
            self.transport.write(head)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def __getattr__(self, name: str) -> Any:  # anything else a cycle may read: the transport's own
        return getattr(self.transport, name)

    def write_direct(self, cycle: Any, start: dict[str, Any], body: dict[str, Any]) -> bool:
        """Write the answer as ``cycle.send(start)`` then ``cycle.send(body)`` would, head and body in one write,
        and return True; or return False, nothing done, where ``send`` must write it (see the module docstring)."""
        if (cycle.response_started or cycle.disconnected or cycle.flow.write_paused or cycle.access_log
                or self.holding or self.head is not None or body.get("more_body", False)
                or cycle.scope["method"] == "HEAD" or start["type"] != "http.response.start"
                or body["type"] != "http.response.body"):
            return False
        status_line = _STATUS_LINE.get(start["status"])
        defaults = _default_lines(cycle.default_headers)
        if status_line is None or defaults is None:
            return False
        payload = body.get("body", b"")
        content = [status_line, defaults]
        length = None
        lines = _lines
        for header in start.get("headers", ()):
            try:
                line = lines.get(header)
            except TypeError:  # a header as a list: send's own reading
                return False
            if line is None:
                name, value = header
                lname = _names.get(name)
                if lname is None:
                    if _BAD_NAME.search(name) or len(_names) >= _LINES_MAX:  # type: ignore[union-attr]
                        return False
                    lname = _names[name] = name.lower()
                if lname == b"content-length":
                    if length is not None or not value.isdigit():  # digits: nothing send's pattern refuses
                        return False
                    length = int(value)
                elif lname in _SPECIAL or _BAD_VALUE.search(value):  # type: ignore[union-attr]
                    return False
                line = b"%s: %s\r\n" % (lname, value)
                if lname not in _PER_REQUEST and len(lines) < _LINES_MAX:
                    lines[header] = line
            content.append(line)
        if length != len(payload):
            return False  # no Content-Length (chunked), or one that is not the body's: send's own handling
        keep_alive = cycle.keep_alive
        if not keep_alive:
            content.append(b"connection: close\r\n")
        content.append(b"\r\n")
        cycle.response_started = True
        cycle.waiting_for_100_continue = False
        cycle.chunked_encoding = False
        cycle.expected_content_length = 0
        self.transport.writelines((b"".join(content), payload))
        cycle.response_complete = True
        cycle.message_event.set()
        if not keep_alive:
            self.close()
        cycle.on_response()
        return True

    async def __call__(self, send: Any, start: dict[str, Any], body: dict[str, Any]) -> None:
        """Send ``start`` then ``body`` (a complete body, ``more_body`` false) in one write: directly
        (``write_direct``) when ``send`` is a cycle of this connection, else through uvicorn's ``send``."""
        if DIRECT:
            cycle = getattr(send, "__self__", None)
            if type(cycle) is RequestResponseCycle and cycle.transport is self and self.write_direct(
                    cycle, start, body):
                return
        self.holding = True
        try:
            await send(start)
        finally:
            self.holding = False  # the head was held, or nothing was written (a client gone, an invalid header)
        try:
            await send(body)
        finally:
            self.flush()  # a head still held (the client went away meanwhile, a failed send): written or dropped


class OneWriteHttpTools(HttpToolsProtocol):
    """``HttpToolsProtocol`` whose request cycles write through a ``HeldHead`` and whose scopes carry it as the
    ``mldeploy.one_write`` extension."""

    _held: HeldHead | None = None

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._held = HeldHead(transport)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {EXTENSION: self._held}  # type: ignore[typeddict-unknown-key]

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.transport is self.transport:
            cycle.transport = self._held  # type: ignore[assignment]
