"""A real HTTP server on 127.0.0.1 for download tests: Range support, and scripted failures.

Each path serves bytes with an ETag. `script[path]` is a list of behaviours consumed one per
request (then "ok"): "ok", "norange" (ignore Range), "drop:N" (close after N body bytes),
"stall:N" (send N bytes, then stall), "500", "404". Every request is logged with the bytes sent.
"""

from __future__ import annotations

import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Loopback:
    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.etags: dict[str, str] = {}
        self.script: dict[str, list[str]] = {}
        self.log: list[dict] = []
        self.stop_stalls = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                server._serve(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{path}"

    def put(self, path: str, data: bytes) -> None:
        self.files[path] = data
        self.etags[path] = '"' + hashlib.md5(data).hexdigest() + '"'

    def sent(self, path: str) -> int:
        return sum(entry["bytes"] for entry in self.log if entry["path"] == path)

    def close(self) -> None:
        self.stop_stalls.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.lstrip("/").split("?")[0]
        queue = self.script.get(path, [])
        mode = queue.pop(0) if queue else "ok"
        entry = {"path": path, "mode": mode, "range": handler.headers.get("Range"), "bytes": 0}
        self.log.append(entry)
        if path not in self.files or mode == "404":
            handler.send_error(404)
            return
        if mode == "500":
            handler.send_error(500)
            return
        data, etag = self.files[path], self.etags[path]
        start = 0
        wanted = handler.headers.get("Range")
        if_range = handler.headers.get("If-Range")
        if wanted and mode != "norange" and (if_range is None or if_range == etag):
            start = int(wanted.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                handler.send_response(416)
                handler.send_header("Content-Range", f"bytes */{len(data)}")
                handler.end_headers()
                return
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            handler.send_response(200)
        body = data[start:]
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("ETag", etag)
        handler.end_headers()
        limit = int(mode.split(":")[1]) if ":" in mode else len(body)
        try:
            for i in range(0, min(limit, len(body)), 65536):
                chunk = body[i : min(i + 65536, limit)]
                handler.wfile.write(chunk)
                entry["bytes"] += len(chunk)
            handler.wfile.flush()
            if mode.startswith("stall"):
                self.stop_stalls.wait(30)  # the client's read timeout fires long before
        except (BrokenPipeError, ConnectionResetError):
            pass
        if mode.startswith(("drop", "stall")):
            handler.close_connection = True
            time.sleep(0.01)
