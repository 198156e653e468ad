"""One socket write per predict answer (``runtime.http.onewrite``): the held head, a real uvicorn server with the
protocol (writes counted at its transport), and ``python -m runtime`` answering pipelined and closing requests
byte-exactly on a raw socket."""

from __future__ import annotations

import socket
import threading
import time

import orjson
import pytest
import uvicorn

from benchmarks import models as ex
from runtime.__main__ import http_protocol
from runtime.http.onewrite import EXTENSION, HeldHead, OneWriteHttpTools
from tests.infra import free_port, runtime_server

ROW = [5.1, 3.5, 1.4, 0.2]


class _Transport:
    """Records what is written, as calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append(("write", bytes(data)))

    def writelines(self, chunks) -> None:
        self.calls.append(("writelines", b"".join(chunks)))

    def close(self) -> None:
        self.calls.append(("close", b""))
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default=None):
        return ("127.0.0.1", 1) if name == "peername" else default


def test_a_held_head_goes_out_with_the_next_write_or_before_close():
    t = _Transport()
    held = HeldHead(t)
    held.write(b"plain")  # nothing held: written as is
    held.holding = True
    held.write(b"HEAD")
    assert t.calls == [("write", b"plain")]  # held back
    held.write(b"BODY")
    assert t.calls[-1] == ("writelines", b"HEADBODY") and held.head is None
    held.holding = True
    held.write(b"HEAD2")
    held.close()  # a response the app never finished: the head is not lost before closing
    assert t.calls[-2:] == [("write", b"HEAD2"), ("close", b"")]
    held.holding = True
    held.write(b"HEAD3")
    held.flush()  # the connection is closing: dropped, not written to a dead socket
    assert t.calls[-1] == ("close", b"") and held.head is None
    assert held.get_extra_info("peername") == ("127.0.0.1", 1)  # anything else: the transport's own


async def _app(scope, receive, send):
    """Answers ``/one`` through the extension (when offered) and ``/two`` with two plain sends."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    while (await receive()).get("more_body"):
        pass
    body = orjson.dumps({"path": scope["path"], "one_write": EXTENSION in scope.get("extensions", {})})
    start = {"type": "http.response.start", "status": 200,
             "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]}
    answer = {"type": "http.response.body", "body": body}
    if scope["path"] == "/one":
        await scope["extensions"][EXTENSION](send, start, answer)
    else:
        await send(start)
        await send(answer)


def _read_answers(sock: socket.socket, n: int) -> list[tuple[bytes, dict[bytes, bytes], bytes]]:
    """``n`` HTTP/1.1 answers (status line, headers, Content-Length body) from ``sock``."""
    buf, out = b"", []
    while len(out) < n:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {len(out)} answers: {buf!r}"
            buf += chunk
        head, buf = buf.split(b"\r\n\r\n", 1)
        status, *lines = head.split(b"\r\n")
        headers = dict(line.lower().split(b": ", 1) for line in lines)
        length = int(headers[b"content-length"])
        while len(buf) < length:
            buf += sock.recv(65536)
        out.append((status, headers, buf[:length]))
        buf = buf[length:]
    return out


def test_uvicorn_with_the_protocol_writes_each_extension_answer_once():
    writes: list[str] = []

    class Counted(OneWriteHttpTools):
        def connection_made(self, transport):
            super().connection_made(transport)
            real = self._held.transport

            class Spy:
                def write(self, data):
                    writes.append("write")
                    real.write(data)

                def writelines(self, chunks):
                    writes.append("writelines")
                    real.writelines(chunks)

                def __getattr__(self, name):
                    return getattr(real, name)

            self._held.transport = Spy()

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(_app, host="127.0.0.1", port=port, http=Counted, loop="asyncio",
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.02)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            req = b"POST %s HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}"
            s.sendall(req % b"/one" + req % b"/two" + req % b"/one")  # pipelined, on one connection
            answers = _read_answers(s, 3)
        assert [a[0] for a in answers] == [b"HTTP/1.1 200 OK"] * 3
        assert [orjson.loads(a[2]) for a in answers] == [{"path": p, "one_write": True} for p in
                                                          ("/one", "/two", "/one")]
        assert writes == ["writelines", "write", "write", "writelines"]  # head + body once; twice without
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def iris(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onewrite") / "iris"
    ex.iris_onnx(folder, n_estimators=10)
    return folder


def test_the_runtime_answers_pipelined_and_closing_requests_whole(iris, tmp_path):
    assert http_protocol() == "runtime.http.onewrite:OneWriteHttpTools"  # httptools is installed here
    body = orjson.dumps({"inputs": [ROW]})
    req = (b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
           b"x-request-id: r-%d\r\n%s\r\n%s")
    with runtime_server(tmp_path, iris) as proc, \
            socket.create_connection(("127.0.0.1", int(proc.url.rsplit(":", 1)[1])), timeout=10) as s:
        s.sendall(req % (len(body), 1, b"", body) + b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n"
                  + req % (len(body), 2, b"", body) + req % (len(body), 3, b"connection: close\r\n", body))
        answers = _read_answers(s, 4)
        assert s.recv(1) == b""  # closed after the last answer, as asked
        with socket.create_connection(("127.0.0.1", int(proc.url.rsplit(":", 1)[1])), timeout=10) as s10:
            s10.sendall((req % (len(body), 4, b"", body)).replace(b"HTTP/1.1", b"HTTP/1.0"))
            (status10, headers10, body10), = _read_answers(s10, 1)
            assert s10.recv(1) == b""  # HTTP/1.0 without keep-alive: closed after the answer
    assert status10 == b"HTTP/1.1 200 OK" and headers10[b"connection"] == b"close"
    assert orjson.loads(body10)["request_id"] == "r-4" and int(headers10[b"content-length"]) == len(body10)
    statuses = [a[0] for a in answers]
    assert statuses == [b"HTTP/1.1 200 OK"] * 4
    docs = [orjson.loads(a[2]) for a in answers]
    assert [d.get("request_id") for d in docs] == ["r-1", None, "r-2", "r-3"] and docs[1] == {"status": "ok"}
    assert docs[0]["predictions"] == ["setosa"] and docs[0]["model"] == "iris"
    assert answers[0][1][b"x-request-id"] == b"r-1" and answers[0][1][b"x-content-type-options"] == b"nosniff"
    assert answers[3][1].get(b"connection") == b"close"


def test_without_httptools_uvicorn_chooses(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "httptools" else real(name, *a))
    assert http_protocol() == "auto"


def _cycle(transport, *, keep_alive: bool = True, method: str = "POST", http_version: str = "1.1",
           default_headers=None):
    """A real uvicorn ``RequestResponseCycle`` over a ``HeldHead`` of ``transport``; ``done`` counts on_response."""
    import asyncio
    import logging

    from uvicorn.protocols.http.flow_control import FlowControl
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

    held = HeldHead(transport)
    done = []
    cycle = RequestResponseCycle(
        scope={"type": "http", "method": method, "http_version": http_version, "path": "/predict"},
        transport=held, flow=FlowControl(transport), logger=logging.getLogger("t"),
        access_logger=logging.getLogger("t.access"), access_log=False,
        default_headers=default_headers if default_headers is not None else [
            (b"date", b"Wed, 02 Dec 2026 04:00:00 GMT"), (b"server", b"uvicorn")],
        message_event=asyncio.Event(), expect_100_continue=False, keep_alive=keep_alive,
        on_response=lambda: done.append(1))
    return held, cycle, done


_STATE = ("response_started", "response_complete", "keep_alive", "expected_content_length", "chunked_encoding")
_BODY = b'{"predictions":["setosa"]}'
_OK = [(b"content-type", b"application/json"), (b"X-Model-Version", b"1.0.0"), (b"cache-control", b"no-store"),
       (b"content-length", b"%d" % len(_BODY)), (b"x-request-id", b"r-1")]


@pytest.mark.parametrize(("headers", "keep_alive", "direct"), [
    (_OK, True, True),
    (_OK, False, True),  # HTTP/1.0 or the client's Connection: close: "connection: close" added, then closed
    (_OK + [(b"connection", b"close")], True, False),  # draining: send's own Connection handling
    (_OK + [(b"content-length", b"3")], True, False),  # a second Content-Length: send's first-wins reading
    ([h for h in _OK if h[0] != b"content-length"], True, False),  # no length: chunked, by send
    ([list(h) for h in _OK], True, False),  # headers as lists (unhashable): send reads them as well
])
def test_a_direct_answer_is_byte_for_byte_what_uvicorns_send_writes(headers, keep_alive, direct):
    import asyncio

    from runtime.http import onewrite

    assert onewrite.DIRECT  # the uvicorn pinned here (runtime/requirements.txt: the host's) is supported
    start = {"type": "http.response.start", "status": 200, "headers": headers}
    answer = {"type": "http.response.body", "body": _BODY}
    ours_t, theirs_t = _Transport(), _Transport()
    held, cycle, done = _cycle(ours_t, keep_alive=keep_alive)
    assert held.write_direct(cycle, start, answer) is direct
    if not direct:
        asyncio.run(held(cycle.send, start, answer))
    ref_held, ref, ref_done = _cycle(theirs_t, keep_alive=keep_alive)

    async def by_send():
        await ref.send(start)
        await ref.send(answer)

    asyncio.run(by_send())
    assert b"".join(c[1] for c in ours_t.calls) == b"".join(c[1] for c in theirs_t.calls)
    assert [c[0] for c in ours_t.calls if c[0] == "close"] == [c[0] for c in theirs_t.calls if c[0] == "close"]
    assert [getattr(cycle, a) for a in _STATE] == [getattr(ref, a) for a in _STATE]
    assert cycle.message_event.is_set() and done == ref_done == [1]
    if direct:
        assert [c[0] for c in ours_t.calls][:1] == ["writelines"]  # head and body in one write


@pytest.mark.parametrize(("headers", "default_headers", "error"), [
    (_OK + [(b"x-bad", b"a\nb")], None, "Invalid HTTP header value"),
    (_OK + [(b"bad name", b"x")], None, "Invalid HTTP header name"),
    ([(b"content-length", b"999")], None, "shorter than Content-Length"),
    (_OK, [(b"server", b"uvicorn\r")], "Invalid HTTP header value"),  # uvicorn's own defaults are checked too
])
def test_what_send_refuses_is_never_written_directly(headers, default_headers, error):
    import asyncio

    t = _Transport()
    held, cycle, _ = _cycle(t, default_headers=default_headers)
    start = {"type": "http.response.start", "status": 200, "headers": headers}
    answer = {"type": "http.response.body", "body": _BODY}
    assert held.write_direct(cycle, start, answer) is False and t.calls == [] and not cycle.response_started
    with pytest.raises(RuntimeError, match=error):
        asyncio.run(held(cycle.send, start, answer))  # uvicorn's send raises, as without the direct write


def test_a_paused_or_gone_connection_and_other_uvicorns_go_through_send(monkeypatch):
    import asyncio

    from runtime.http import onewrite

    start = {"type": "http.response.start", "status": 200, "headers": _OK}
    answer = {"type": "http.response.body", "body": _BODY}
    held, cycle, _ = _cycle(_Transport())
    cycle.disconnected = True
    assert held.write_direct(cycle, start, answer) is False
    held, cycle, _ = _cycle(_Transport())
    cycle.flow.write_paused = True
    assert held.write_direct(cycle, start, answer) is False
    monkeypatch.setattr(onewrite.uvicorn, "__version__", "0.99.0")
    assert onewrite.direct_supported() is False
    monkeypatch.setattr(onewrite, "DIRECT", False)
    t = _Transport()
    held, cycle, done = _cycle(t)
    monkeypatch.setattr(HeldHead, "write_direct", lambda *a: pytest.fail("the direct write with DIRECT off"))
    asyncio.run(held(cycle.send, start, answer))
    assert [c[0] for c in t.calls] == ["writelines"] and cycle.response_complete and done == [1]
