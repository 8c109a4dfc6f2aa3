"""Limits on a request's head (request line and headers) while it streams in, before the app sees anything.

uvicorn's default HTTP/1.1 parser, httptools (llhttp), has none: a 200 MB header was read whole and answered
by /healthz (server RSS +380 MB) before auth could say no, and a client sending a header a byte a minute held
its connection for ever. h11 bounds a head's size (`h11_max_incomplete_event_size`) but not its header count or
the time it takes, and parses in pure Python, so the server keeps httptools and this protocol counts instead:
every chunk of an unfinished head as it arrives, the request line and each header as the parser hands them
over, and a deadline from the connection's start (or, on a kept-alive connection, the request's first byte) to
its last header. Past a limit the client gets 431 (414 for a long request line, 408 for the deadline) and the
connection is closed without reading further, so a connection holds at most the limit plus one read (256 kB).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

if TYPE_CHECKING:
    from dlpipe.serving.server import ServerSettings

log = logging.getLogger("uvicorn.error")


@dataclass(frozen=True)
class HeadLimits:
    """What one request's head may take: bytes (request line and headers together), header count, seconds."""

    max_bytes: int = 16 * 1024
    max_headers: int = 100
    timeout_s: float = 10.0


class _Refused(Exception):
    """Raised inside a parser callback to stop llhttp mid-chunk; the answer is in the protocol's `_refusal`."""


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with `limits` on each request's head; a subclass per server sets them."""

    limits: ClassVar[HeadLimits] = HeadLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._refusal: tuple[int, str] | None = None
        self._head_open = False  # a request has begun and its headers are not complete yet
        self._head_size = 0  # request line and headers as parsed
        self._head_count = 0
        self._head_streamed = 0  # bytes of chunks that ended inside the head
        self._message_ended = False  # in the chunk being parsed: its bytes are not all this head's

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_deadline()  # a connection that never sends a byte is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        self._message_ended = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._refusal is not None:
                self._answer(*self._refusal)
            else:
                log.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._head_open and not self._message_ended:  # all of this chunk belongs to the unfinished head
            self._head_streamed += len(data)
            if self._head_streamed > self.limits.max_bytes:
                self._answer(431, self._too_large())

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_open, self._head_size, self._head_count, self._head_streamed = True, 0, 0, 0
        if self._deadline is None:
            self._arm_deadline()

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        if self._head_size > self.limits.max_bytes:
            self._refuse(414, f"request line over the limit of {self.limits.max_bytes} bytes")
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_count += 1
        self._head_size += len(name) + len(value) + 4  # ": " and CRLF
        if self._head_count > self.limits.max_headers:
            self._refuse(431, f"more than {self.limits.max_headers} request headers")
        if self._head_size > self.limits.max_bytes:
            self._refuse(431, self._too_large())
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_open = False
        self._disarm_deadline()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._message_ended = True
        super().on_message_complete()

    def _too_large(self) -> str:
        return f"request line and headers over the limit of {self.limits.max_bytes} bytes"

    def _refuse(self, status: int, message: str) -> None:
        self._refusal = (status, message)
        raise _Refused(message)

    def _arm_deadline(self) -> None:
        self._deadline = self.loop.call_later(self.limits.timeout_s, self._head_timed_out)

    def _disarm_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._head_open:
            self._answer(408, f"request headers not complete within {self.limits.timeout_s:g} s")
        else:  # connected but silent: nothing to answer
            self.transport.close()

    def _answer(self, status: int, message: str) -> None:
        """A JSON error like the app's own, then close: the rest of the request is never read."""
        log.warning("%s:%s - refused (%d): %s", *(self.client or ("?", "?")), status, message)
        body = json.dumps({"error": message}).encode()
        head = [STATUS_LINE[status]]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [b"content-type: application/json\r\n", b"content-length: %d\r\n" % len(body),
                 b"connection: close\r\n\r\n"]
        self._disarm_deadline()
        self.transport.write(b"".join(head) + body)
        self.transport.close()


def protocol_with(limits: HeadLimits) -> type[LimitedHttpProtocol]:
    """A protocol class holding `limits` (uvicorn makes one protocol per connection from a class)."""
    return type("LimitedHttpProtocol", (LimitedHttpProtocol,), {"limits": limits})


def server_config(app: Any, settings: ServerSettings, host: str, port: int, log_level: str = "warning") -> uvicorn.Config:
    """uvicorn's configuration for `dlpipe serve`: the limited protocol, and no WebSocket upgrades (no route uses
    them, so they are only more to attack)."""
    limits = HeadLimits(settings.max_header_bytes, settings.max_headers, settings.header_timeout_s)
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, http=protocol_with(limits), ws="none")
