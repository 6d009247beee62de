"""Downloads against a real HTTP server on 127.0.0.1 (a thread in this process): cache hits,
resumption with HTTP Range, sha256 and content checks, offline mode, and the failures a user meets
(404, redirect loops, a hanging server, an HTML page). Nothing leaves the machine."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from foundation.errors import CheckpointError, UserError
from foundation.hub.cache import cache_dir, cache_path, safe_filename
from foundation.hub.download import download

pytestmark = pytest.mark.integration  # a local HTTP server


class _Handler(BaseHTTPRequestHandler):
    """Serves `server.routes[path]`: ("file", bytes, content_type) with Range support,
    ("drop_once", bytes) sends half the body then closes (the first time only),
    ("redirect", location), ("hang",) answers nothing until the test ends."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.server.requests.append((self.path, self.headers.get("Range")))
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404, "Not Found")
        elif route[0] == "redirect":
            self.send_response(302)
            self.send_header("Location", route[1])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif route[0] == "hang":
            self.server.release.wait(10)
        elif route[0] == "drop_once" and self.path not in self.server.dropped:
            self.server.dropped.add(self.path)
            body = route[1]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
        else:
            self._send_file(route[1], route[2] if len(route) > 2 else "application/octet-stream")

    def _send_file(self, body: bytes, content_type: str):
        start = 0
        wanted = self.headers.get("Range")
        if wanted and wanted.startswith("bytes=") and wanted.endswith("-"):
            start = int(wanted[6:-1])
            if start >= len(body):
                self.send_error(416, "Range Not Satisfiable")
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])

    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def server(monkeypatch, tmp_path):
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FOUNDATION_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FOUNDATION_OFFLINE", raising=False)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.routes, httpd.requests, httpd.dropped = {}, [], set()
    httpd.release = threading.Event()
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.release.set()
    httpd.shutdown()
    httpd.server_close()


def _safetensors_bytes(tmp_path: Path, n: int = 50_000) -> bytes:
    path = tmp_path / "weights.safetensors"
    save_file({"w": torch.arange(n, dtype=torch.float32)}, str(path), metadata={"x": "y"})
    return path.read_bytes()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_verifies_and_caches_without_a_second_request(server, tmp_path):
    body = _safetensors_bytes(tmp_path)
    server.routes["/m.safetensors"] = ("file", body)
    url = server.base + "/m.safetensors"
    first = download(url, sha256=_sha(body), size=len(body), progress=False)
    assert first.read_bytes() == body
    assert first.is_relative_to(cache_dir())
    second = download(url, sha256=_sha(body), progress=False)
    assert second == first
    assert len(server.requests) == 1, server.requests


def test_interrupted_transfer_resumes_with_range(server, tmp_path):
    body = _safetensors_bytes(tmp_path)
    server.routes["/m.safetensors"] = ("drop_once", body)
    path = download(server.base + "/m.safetensors", sha256=_sha(body), progress=False)
    assert path.read_bytes() == body
    assert server.requests[0][1] is None
    assert server.requests[1][1] == f"bytes={len(body) // 2}-", server.requests


def test_partial_file_from_an_earlier_call_is_resumed(server, tmp_path):
    body = _safetensors_bytes(tmp_path)
    server.routes["/m.safetensors"] = ("drop_once", body)
    url = server.base + "/m.safetensors"
    with pytest.raises(UserError, match="run the command again to resume"):
        download(url, sha256=_sha(body), retries=0, progress=False)
    part = cache_path(url, _sha(body)).with_name("m.safetensors.part")
    assert part.stat().st_size == len(body) // 2
    assert not cache_path(url, _sha(body)).exists()
    path = download(url, sha256=_sha(body), progress=False)
    assert path.read_bytes() == body and not part.exists()
    assert server.requests[-1][1] == f"bytes={len(body) // 2}-"


def test_sha256_mismatch_is_refused_and_the_file_deleted(server, tmp_path):
    body = _safetensors_bytes(tmp_path)
    server.routes["/m.safetensors"] = ("file", body)
    url = server.base + "/m.safetensors"
    wrong = "0" * 64
    with pytest.raises(CheckpointError, match="sha256 mismatch.*deleted"):
        download(url, sha256=wrong, progress=False)
    assert not any(p.is_file() and not p.name.endswith(".lock") for p in cache_dir().rglob("*"))


def test_html_page_never_enters_the_cache(server):
    page = b"<!DOCTYPE html><html><body>Sign in to continue</body></html>"
    server.routes["/page"] = ("file", page, "text/html; charset=utf-8")
    server.routes["/disguised.safetensors"] = ("file", page)  # served as octet-stream
    with pytest.raises(UserError, match="web page"):
        download(server.base + "/page", progress=False)
    with pytest.raises(CheckpointError, match="not a safetensors file.*HTML page.*deleted"):
        download(server.base + "/disguised.safetensors", progress=False)
    assert not any(p.is_file() and not p.name.endswith(".lock") for p in cache_dir().rglob("*"))


def test_offline_mode_uses_the_cache_only(server, tmp_path, monkeypatch):
    body = _safetensors_bytes(tmp_path)
    server.routes["/m.safetensors"] = ("file", body)
    url = server.base + "/m.safetensors"
    monkeypatch.setenv("FOUNDATION_OFFLINE", "1")
    with pytest.raises(UserError, match="not in the cache.*FOUNDATION_OFFLINE=1"):
        download(url, sha256=_sha(body), progress=False)
    assert server.requests == []
    monkeypatch.delenv("FOUNDATION_OFFLINE")
    path = download(url, sha256=_sha(body), progress=False)
    monkeypatch.setenv("FOUNDATION_OFFLINE", "1")
    assert download(url, sha256=_sha(body), progress=False) == path
    assert len(server.requests) == 1


def test_corrupted_cache_entry_is_downloaded_again(server, tmp_path):
    body = _safetensors_bytes(tmp_path)
    server.routes["/m.safetensors"] = ("file", body)
    url = server.base + "/m.safetensors"
    path = download(url, sha256=_sha(body), progress=False)
    path.write_bytes(body[:100])
    assert download(url, sha256=_sha(body), progress=False).read_bytes() == body
    assert len(server.requests) == 2


def test_http_errors_are_one_clear_line(server):
    with pytest.raises(UserError, match=r"HTTP 404 .*check the URL"):
        download(server.base + "/missing.safetensors", progress=False)
    with pytest.raises(UserError, match="not a downloadable URL"):
        download("ftp://example.org/m.safetensors", progress=False)
    with pytest.raises(UserError, match="not a downloadable URL"):
        download("not a url", progress=False)


def test_redirects_are_followed_and_loops_named(server, tmp_path):
    body = _safetensors_bytes(tmp_path)
    server.routes["/real.safetensors"] = ("file", body)
    server.routes["/moved"] = ("redirect", "/real.safetensors")
    assert download(server.base + "/moved", sha256=_sha(body), progress=False).read_bytes() == body
    server.routes["/a"] = ("redirect", server.base + "/b")
    server.routes["/b"] = ("redirect", "/a")
    with pytest.raises(UserError, match="redirect loop"):
        download(server.base + "/a", progress=False)
    for k in range(4):
        server.routes[f"/hop{k}"] = ("redirect", f"/hop{k + 1}")
    with pytest.raises(UserError, match="more than 2 redirects"):
        download(server.base + "/hop0", max_redirects=2, progress=False)


def test_hanging_server_times_out(server):
    server.routes["/slow.safetensors"] = ("hang",)
    with pytest.raises(UserError, match=r"no answer within 0.3 s"):
        download(server.base + "/slow.safetensors", timeout=0.3, progress=False)


def test_refused_connection_is_reported(server):
    server.server_close()  # nothing listens on that port any more
    with pytest.raises(UserError, match="cannot connect|connection failed"):
        download(server.base + "/m.safetensors", progress=False, timeout=2)


def test_nothing_is_written_outside_the_cache(server, tmp_path):
    body = _safetensors_bytes(tmp_path)
    server.routes["/x/..%2F..%2Fevil.safetensors"] = ("file", body)
    path = download(server.base + "/x/..%2F..%2Fevil.safetensors", progress=False)
    assert path.parent.parent.parent == cache_dir() and path.name == "evil.safetensors"
    written = {p for p in tmp_path.rglob("*") if p.is_file()} - {tmp_path / "weights.safetensors"}
    assert all(p.is_relative_to(cache_dir()) for p in written), written
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("..") == "model.safetensors"


def test_registry_name_downloads_from_its_url(server, tmp_path, monkeypatch):
    from foundation.hub.resolve import resolve

    body = _safetensors_bytes(tmp_path)
    server.routes["/zoo/tiny.safetensors"] = ("file", body)
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"format_version": 1, "models": {"tiny": {
        "url": server.base + "/zoo/tiny.safetensors", "sha256": _sha(body), "size": len(body)}}}))
    monkeypatch.setenv("FOUNDATION_REGISTRY", str(registry))
    path, entry = resolve("tiny", progress=False)
    assert path.read_bytes() == body and entry.name == "tiny"


def test_load_pretrained_from_a_url_rebuilds_the_model(server, tmp_path, make_samples):
    import foundation
    from foundation.data.batch import collate
    from foundation.hub.format import save_model
    from foundation.models import ANIConfig

    torch.manual_seed(0)
    model = ANIConfig(hidden={s: [8] for s in "HCNO"}, heads=["wb97x_631gs", "ccsdt_ccpvdz"]).build().eval()
    file = save_model(model, tmp_path / "served.safetensors")
    server.routes["/ani.safetensors"] = ("file", file.read_bytes())
    loaded = foundation.load_pretrained(server.base + "/ani.safetensors", device="cpu")
    batch = collate(make_samples(2, 1))
    for head in model.heads:
        expected, got = model(batch, head=head), loaded(batch, head=head)
        torch.testing.assert_close(got["energy"], expected["energy"])
        torch.testing.assert_close(got["forces"], expected["forces"])
    assert not loaded.training
