"""A read-only image registry on 127.0.0.1 for tests of pulls through the real Docker engine:
it serves one image, taken from `docker save`, over the registry HTTP API (v2) — `GET /v2/`,
manifests by tag or digest, blobs by digest. The engine treats 127.0.0.0/8 registries as
insecure (plain HTTP) by default, so nothing needs configuring."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _image_files(image: str, folder: Path) -> tuple[bytes, dict[str, Path]]:
    """The OCI manifest of a saved image (uncompressed layers) and its blobs by digest."""
    tarball = folder / "image.tar"
    subprocess.run(["docker", "save", image, "-o", str(tarball)], check=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(folder, filter="data")
    (entry,) = json.loads((folder / "manifest.json").read_text())
    blobs: dict[str, Path] = {}
    config = folder / entry["Config"]
    blobs[_digest(config)] = config
    layers = []
    for rel in entry["Layers"]:
        layer = folder / rel
        digest = _digest(layer)
        blobs[digest] = layer
        layers.append(
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": digest,
                "size": layer.stat().st_size,
            }
        )
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": _digest(config),
            "size": config.stat().st_size,
        },
        "layers": layers,
    }
    return json.dumps(manifest).encode(), blobs


@contextmanager
def serve_image(image: str, folder: Path, name: str, tag: str) -> Iterator[str]:
    """Serve `image` (present in the engine) as NAME:TAG; yields the pullable reference."""
    manifest, blobs = _image_files(image, folder)
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, body: bytes | Path | None, kind: str, digest: str = "") -> None:
            size = body.stat().st_size if isinstance(body, Path) else len(body or b"")
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(size))
            if digest:
                self.send_header("Docker-Content-Digest", digest)
            self.end_headers()
            if self.command == "HEAD" or body is None:
                return
            if isinstance(body, Path):
                with body.open("rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        self.wfile.write(chunk)
            else:
                self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path in ("/v2/", "/v2"):
                return self._send(b"{}", "application/json")
            if self.path in (
                f"/v2/{name}/manifests/{tag}",
                f"/v2/{name}/manifests/{manifest_digest}",
            ):
                return self._send(manifest, MANIFEST_TYPE, manifest_digest)
            prefix = f"/v2/{name}/blobs/"
            if self.path.startswith(prefix) and self.path[len(prefix) :] in blobs:
                digest = self.path[len(prefix) :]
                return self._send(blobs[digest], "application/octet-stream", digest)
            self.send_error(404)
            return None

        do_HEAD = do_GET

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}/{name}:{tag}"
    finally:
        server.shutdown()
        server.server_close()
