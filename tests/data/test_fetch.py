"""``lightseg data fetch`` against a loopback HTTP server the test starts (no internet)."""

import hashlib
import http.server
import io
import threading
import zipfile
from pathlib import Path

import pytest

from lightseg_tf.cli import main
from lightseg_tf.data.fetch import RELEASES, fetch
from lightseg_tf.errors import LightsegError


def _archive() -> bytes:
    """A Zenodo-style record zip holding an inner training_set.zip and the CSV."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("training_set/000_HC.png", b"png-bytes-" * 500)
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w") as z:
        z.writestr("training_set.zip", inner.getvalue())
        z.writestr("training_set_pixel_size_and_HC.csv", "filename,pixel size(mm),head circumference (mm)\n")
    return outer.getvalue()


class _Server:
    """Serves one payload at one path, honouring HTTP Range; counts requests and ranges."""

    def __init__(self, path: str, payload: bytes):
        self.payload, self.ranges = payload, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path != path:
                    self.send_error(404)
                    return
                start = 0
                rng = self.headers.get("Range")
                outer.ranges.append(rng)
                if rng:
                    start = int(rng.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
                else:
                    self.send_response(200)
                body = payload[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():
    payload = _archive()
    srv = _Server(RELEASES["hc18"].path, payload)
    yield srv
    srv.close()


def test_fetch_downloads_checks_and_unpacks_nested_zips(server, tmp_path, monkeypatch):
    monkeypatch.setenv("LIGHTSEG_FETCH_URL", server.url)
    digest = hashlib.sha256(server.payload).hexdigest()
    assert main(["data", "fetch", "hc18", str(tmp_path / "hc18"), "--sha256", digest]) == 0
    assert (tmp_path / "hc18/training_set/000_HC.png").read_bytes() == b"png-bytes-" * 500
    assert (tmp_path / "hc18/training_set_pixel_size_and_HC.csv").exists()
    assert not list((tmp_path / "hc18").glob("*.zip")) and not list((tmp_path / "hc18").glob("*.part"))


def test_fetch_resumes_a_partial_download(server, tmp_path):
    dest = tmp_path / "d"
    dest.mkdir()
    half = len(server.payload) // 2
    (dest / (RELEASES["hc18"].filename + ".part")).write_bytes(server.payload[:half])
    fetch("hc18", dest, sha256=hashlib.sha256(server.payload).hexdigest(), base=server.url, progress=False)
    assert server.ranges == [f"bytes={half}-"]
    assert (dest / "training_set/000_HC.png").exists()


def test_checksum_mismatch_removes_the_file(server, tmp_path):
    with pytest.raises(LightsegError, match="SHA-256"):
        fetch("hc18", tmp_path, sha256="0" * 64, base=server.url, progress=False)
    assert not (tmp_path / RELEASES["hc18"].filename).exists()


def test_offline_says_how_to_download_by_hand(tmp_path):
    # Port 9 on loopback: nothing listens, the connection is refused at once.
    with pytest.raises(LightsegError) as err:
        fetch("psfhs", tmp_path, base="http://127.0.0.1:9", progress=False, timeout=5)
    msg = str(err.value)
    assert "cannot download" in msg and "records/10969427" in msg and "by hand" in msg


def test_unknown_release():
    with pytest.raises(LightsegError, match="unknown release"):
        fetch("imagenet", Path("/tmp"), progress=False)
