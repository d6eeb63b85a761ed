"""A loopback static server for the browser demo: ``/`` is tflite/web, ``/golden/`` a golden folder."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path


class _Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, web: Path, golden: Path, **kwargs):
        self._golden = golden
        super().__init__(*args, directory=str(web), **kwargs)

    def translate_path(self, path):
        clean = path.split("?", 1)[0].split("#", 1)[0]
        if clean.startswith("/golden/"):
            return str(self._golden / clean[len("/golden/"):])
        return super().translate_path(path)

    def log_message(self, *args):  # keep test output quiet
        pass


def serve(web: Path, golden: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Start serving on 127.0.0.1 (a free port) in a daemon thread; returns (server, base URL)."""
    handler = functools.partial(_Handler, web=Path(web), golden=Path(golden))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"
