"""A loopback static server for the browser demo: ``/`` is tflite/web, ``/golden/`` a golden folder,
``/driver.html`` the test driver (web_driver.html); a POST to ``/result`` is queued on ``server.results``."""

from __future__ import annotations

import functools
import http.server
import json
import queue
import threading
from pathlib import Path

DRIVER = Path(__file__).with_name("web_driver.html")


class _Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, web: Path, golden: Path, **kwargs):
        self._golden = golden
        super().__init__(*args, directory=str(web), **kwargs)

    def translate_path(self, path):
        clean = path.split("?", 1)[0].split("#", 1)[0]
        if clean.startswith("/golden/"):
            return str(self._golden / clean[len("/golden/"):])
        if clean == "/driver.html":
            return str(DRIVER)
        return super().translate_path(path)

    def do_POST(self):
        # The driver reports here: a page timed in real time cannot hand its numbers to --dump-dom,
        # which needs virtual time (and virtual time stops performance.now()).
        if self.path != "/result":
            self.send_error(404)
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.results.put(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):  # keep test output quiet
        pass


def serve(web: Path, golden: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Start serving on 127.0.0.1 (a free port) in a daemon thread.

    Args:
        web: the folder served at ``/`` (tflite/web).
        golden: the folder served at ``/golden/`` (it need not exist: a fresh clone's case).

    Returns:
        The server (its ``results`` queue holds what was POSTed to ``/result``) and its base URL.
    """
    handler = functools.partial(_Handler, web=Path(web), golden=Path(golden))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.results = queue.Queue()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"
