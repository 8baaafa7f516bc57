"""A local HTTP server on 127.0.0.1 for download tests: serves given bytes, truncated bodies, byte ranges and 404s;
and small zip archives to serve."""

from __future__ import annotations

import io
import re
import socket
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    """``files[path] = bytes`` are served at ``url(path)``; ``truncated[path] = (bytes, claimed_length)`` announce
    ``claimed_length`` in Content-Length but send only the bytes, then close; anything else is 404.

    A ``Range: bytes=N-`` request is answered as a server that supports ranges does (206 with Content-Range, or 416
    past the end; a truncated file sends its bytes from N on), unless ``ranges`` is false (then 200, whole file).
    ``ranges_asked`` records each request's Range header (``None`` without one).
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.truncated: dict[str, tuple[bytes, int]] = {}
        self.requests: list[str] = []
        self.ranges_asked: list[str | None] = []
        self.ranges = True
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server.requests.append(self.path)
                asked = self.headers.get("Range")
                server.ranges_asked.append(asked)
                if self.path in server.files:
                    body, length = server.files[self.path], len(server.files[self.path])
                elif self.path in server.truncated:
                    body, length = server.truncated[self.path]
                else:
                    self.send_error(404, "Not Found")
                    return
                match = re.fullmatch(r"bytes=(\d+)-", asked or "") if server.ranges else None
                start = int(match.group(1)) if match else 0
                if match and start >= length:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{length}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    self.close_connection = True
                    return
                self.send_response(206 if match else 200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(length - start))
                if match:
                    self.send_header("Content-Range", f"bytes {start}-{length - 1}/{length}")
                self.end_headers()
                self.wfile.write(body[start:])
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@contextmanager
def serve() -> Iterator[FileServer]:
    server = FileServer()
    thread = threading.Thread(target=server.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
        thread.join()


def closed_port_url(path: str = "/file.bin") -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused, like a machine without network)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def zip_bytes(members: dict[str, bytes]) -> bytes:
    """A deflated zip archive, in memory, of ``{member name: content}``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()
