"""The published ANI ensembles by name, fetched from a real HTTP server on 127.0.0.1 that serves
the zoo's files (../shared/ani-model-zoo) as GitHub would: every file verified against the
packaged manifest, converted, cached as one file; a dropped connection resumed; a corrupted file or
an HTML page refused with nothing cached; FOUNDATION_OFFLINE=1 served from the cache only."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

import foundation
from foundation.errors import CheckpointError, UserError
from foundation.hub.ani import manifest as ani_manifest
from foundation.hub.ani import zoo as ani_zoo
from foundation.hub.format import read_header

ZOO = Path(__file__).resolve().parents[2].parent / "shared" / "ani-model-zoo"
pytestmark = pytest.mark.skipif(not (ZOO / "resources").is_dir(),
                                reason=f"the published ANI files are not at {ZOO} (the project's shared/ folder)")
PARAMS = "/resources/ani-2x_8x/rHCNOSFCl-5.1R_16-3.5A_a8-4.params"
LAYER = "/resources/ani-2x_8x/train2/networks/ANN-S.nnf-l1.wparam"


class _ZooHandler(BaseHTTPRequestHandler):
    """Serves the zoo folder with HTTP Range; `server.faults[path]` is "corrupt" (one byte
    changed), "html" (a 200 web page), "html-as-binary" (a web page as octet-stream) or
    "drop_once" (half the body, then the connection closes; the first time only)."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.server.requests.append((self.path, self.headers.get("Range")))
        fault = self.server.faults.get(self.path)
        file = ZOO / self.path.lstrip("/")
        if fault in ("html", "html-as-binary"):
            page = b"<!DOCTYPE html><html><body>Rate limit exceeded</body></html>"
            return self._send(page, "text/html; charset=utf-8" if fault == "html" else "application/octet-stream")
        if not file.is_file() or ZOO not in file.resolve().parents:
            return self.send_error(404, "Not Found")
        body = file.read_bytes()
        if fault == "corrupt":
            body = bytes([body[0] ^ 1]) + body[1:]
        if fault == "drop_once" and self.path not in self.server.dropped:
            self.server.dropped.add(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return None
        start = int(self.headers["Range"][6:-1]) if (self.headers.get("Range") or "").startswith("bytes=") else 0
        return self._send(body[start:], "application/octet-stream", start, len(body))

    def _send(self, body: bytes, kind: str, start: int = 0, total: int | None = None):
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{total - 1}/{total}")
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def zoo_server(monkeypatch, tmp_path):
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FOUNDATION_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FOUNDATION_OFFLINE", raising=False)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _ZooHandler)
    httpd.daemon_threads = True
    httpd.requests, httpd.faults, httpd.dropped = [], {}, set()
    monkeypatch.setenv(ani_manifest.BASE_URL_ENV, f"http://127.0.0.1:{httpd.server_address[1]}/")
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _cached_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix != ".lock") if root.exists() else []


@pytest.mark.integration  # a local HTTP server
def test_ani2x_downloads_verified_resumes_and_then_works_offline(zoo_server, tmp_path, monkeypatch):
    from foundation.hub.ani.from_neurochem import load_neurochem

    zoo_server.faults[LAYER] = "drop_once"
    model = foundation.load_pretrained("ani-2x", device="cpu")
    assert (LAYER, None) in zoo_server.requests and any(p == LAYER and r for p, r in zoo_server.requests)
    manifest = ani_manifest.load_manifest()
    fetched = {p for p, _ in zoo_server.requests}
    wanted = ani_manifest.model_files(manifest, "ani-2x_8x")
    assert fetched <= {"/" + p for p in wanted}  # files with the same bytes (sha256) are fetched once
    assert len(fetched) == len({manifest["files"][p]["sha256"] for p in wanted})
    cached = ani_zoo.cached_model("ani-2x_8x")
    assert _cached_files(tmp_path / "cache") == [cached]  # the sources are gone once converted
    header = read_header(cached)
    assert header["license"] == "MIT" and header["source"]["commit"] == manifest["commit"]
    assert header["license_text"] == (ZOO / "LICENSE").read_text() and header["default_head"] == "wb97x_631gs"

    expected, _ = load_neurochem(ZOO / "resources" / "ani-2x_8x.info")
    assert model.elements == [1, 6, 7, 8, 16, 9, 17] and model.default_head == "wb97x_631gs"
    assert all(torch.equal(v, expected.state_dict()[k]) for k, v in model.state_dict().items())

    zoo_server.requests.clear()
    monkeypatch.setenv("FOUNDATION_OFFLINE", "1")
    calc = foundation.calculator("ani-2x", device="cpu")
    assert calc.model.heads == ["wb97x_631gs"] and zoo_server.requests == []


@pytest.mark.integration  # a local HTTP server
def test_refresh_rebuilds_a_shipped_model_from_the_published_files(zoo_server, capsys):
    from foundation.cli.main import main

    assert main(["hub", "download", "ani-1ccx", "--refresh"]) == 0
    cached = ani_zoo.cached_model("ani-1ccx_8x")
    assert str(cached) in capsys.readouterr().out and len(zoo_server.requests) > 200
    shipped = foundation.load_pretrained("ani-1ccx", device="cpu")  # the shipped copy stays the one used
    rebuilt = foundation.load_pretrained(cached, device="cpu")
    assert all(torch.equal(v, rebuilt.state_dict()[k]) for k, v in shipped.state_dict().items())
    assert main(["hub", "list"]) == 0 and "ani-1ccx" in capsys.readouterr().out


@pytest.mark.integration  # a local HTTP server
@pytest.mark.parametrize("fault,error,message", [
    ("corrupt", CheckpointError, "sha256 mismatch"),
    ("html", UserError, "the server sent a web page"),
    ("html-as-binary", CheckpointError, "it looks like an HTML page"),
])
def test_a_bad_answer_is_refused_and_nothing_is_cached(zoo_server, tmp_path, fault, error, message):
    zoo_server.faults[PARAMS] = fault
    with pytest.raises(error, match=message):
        foundation.load_pretrained("ani-2x", device="cpu")
    assert not ani_zoo.cached_model("ani-2x_8x").exists()
    left = _cached_files(tmp_path / "cache")
    assert all(p.suffix not in (".safetensors", ".part", ".params") for p in left), left  # only verified files
    if fault != "corrupt":
        return
    del zoo_server.faults[PARAMS]  # the server is fixed: the next call fetches only what is missing
    before = len(zoo_server.requests)
    foundation.load_pretrained("ani-2x", device="cpu")
    again = [p for p, _ in zoo_server.requests[before:]]
    assert PARAMS in again and "/LICENSE" not in again


@pytest.mark.integration  # a local HTTP server
def test_offline_without_a_cache_is_one_clear_line(zoo_server, monkeypatch, capsys):
    from foundation.cli.main import main

    monkeypatch.setenv("FOUNDATION_OFFLINE", "1")
    with pytest.raises(UserError, match="not in the cache .* FOUNDATION_OFFLINE=1 forbids downloading"):
        foundation.load_pretrained("ani-2x", device="cpu")
    assert main(["hub", "download", "ani-2x"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "FOUNDATION_OFFLINE=1" in err
    assert zoo_server.requests == []
    assert foundation.load_pretrained("ani-1x", device="cpu").default_head == "wb97x_631gs"  # shipped: offline is fine
