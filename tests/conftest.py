"""Shared fixtures. Real data lives in ../shared/data (or $DESCNET_SHARED_DATA); tests that need it skip
with a clear reason when it is absent."""
from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# "auto" follows the rule in tests (a measured choice depends on the timing of the moment); the measurement has its
# own tests (tests/test_backend_choice.py)
os.environ["DESCNET_AUTO_BACKEND"] = "rule"
SHARED_DATA = Path(os.environ.get("DESCNET_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the shared real data; skips the test when it is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set DESCNET_SHARED_DATA to its folder)")
    return SHARED_DATA


def shared_file(root: Path, relative: str) -> Path:
    """A file under the shared data; skips the test when that file is absent."""
    path = root / relative
    if not path.exists():
        pytest.skip(f"{path} is not in the shared data")
    return path


def fail_at_rename(monkeypatch, k: int) -> dict[str, int]:
    """Make the ``k``-th ``os.replace`` that descnet's writers (:mod:`descnet.io`) call raise ``OSError``;
    returns the call counter (``counter["n"] < k`` after a run: no rename failed, every point was tried).
    Undo with ``monkeypatch.undo()`` or let the test end."""
    import descnet.io as dio

    real, calls = os.replace, {"n": 0}

    def flaky(src, dst):
        calls["n"] += 1
        if calls["n"] == k:
            raise OSError(f"injected failure at rename {k}")
        return real(src, dst)

    monkeypatch.setattr(dio.os, "replace", flaky)
    return calls


@pytest.fixture(autouse=True)
def _few_threads():
    """Keep each test on the machine's cores without oversubscription."""
    import torch

    torch.manual_seed(0)
    yield


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.files`` (path -> bytes) with Range support; ``server.truncate_at`` cuts bodies short."""

    def do_GET(self):  # noqa: N802 (http.server naming)
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        data = srv.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start, range_header = 0, self.headers.get("Range")
        if range_header and srv.ranges:
            start = int(range_header.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", '"v1"')
        self.end_headers()
        if srv.truncate_at is not None:
            body = body[:srv.truncate_at]  # then the connection closes: a truncated response
        self.wfile.write(body)
        srv.bytes_sent += len(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """A local HTTP server on 127.0.0.1: set ``server.files[path] = bytes``; URLs are ``server.base + path``."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.requests, srv.ranges, srv.truncate_at, srv.bytes_sent = {}, [], True, None, 0
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def constant_weights(tmp_path) -> Path:
    """A descnet checkpoint ``w/flat.pt`` of TFeat whose last layer is zero with bias 1: every patch gets the same
    descriptor (for the evals' constant-descriptor warnings; its label is ``w-flat``)."""
    import torch

    from descnet.models import create_model

    model = create_model("tfeat")
    state = model.state_dict()
    state["descr.0.weight"].zero_()
    state["descr.0.bias"].fill_(1.0)
    (tmp_path / "w").mkdir()
    torch.save({"descnet": 1, "model": {"name": "tfeat", "options": dict(model.descnet_options)},
                "state_dict": state}, tmp_path / "w" / "flat.pt")
    return tmp_path / "w" / "flat.pt"
