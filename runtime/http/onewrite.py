"""uvicorn's httptools protocol with one socket write per predict answer (``python -m runtime`` serves with it).

uvicorn writes a response's head when the app sends ``http.response.start`` and its body at
``http.response.body``; with uvloop each ``transport.write`` is a ``send`` system call and, for a small answer, a
TCP segment of its own (the client reads twice). ``OneWriteHttpTools`` offers the app an ASGI extension,
``scope["extensions"]["mldeploy.one_write"]``: ``await one_write(send, start, body)`` sends both messages through
uvicorn's own ``send`` (its header checks, keep-alive and completion bookkeeping unchanged), the head held back
and written with the body in one ``writelines`` (one ``writev``). Only the predict fast path
(``runtime.http.fastpath``) uses it, for an answer whose body is complete; every other response is written as
uvicorn writes it. Without httptools (``http: h11``) uvicorn's "auto" protocol serves and no extension is offered.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

EXTENSION = "mldeploy.one_write"


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

    async def __call__(self, send: Any, start: dict[str, Any], body: dict[str, Any]) -> None:
        """Send ``start`` then ``body`` (a complete body, ``more_body`` false) through uvicorn's ``send``, in one
        write."""
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
