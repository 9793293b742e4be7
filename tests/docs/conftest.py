"""One real worker (``python -m handler serve`` against the ComfyUI double, RunPod SDK local API)
for every documentation and Hub-file test, with what a documented example may need: a complete
small fp8 model set, a media server on loopback standing in for example.com, and a bucket on a
local S3-compatible server (moto) for ``"delivery": "url"``.
"""

from __future__ import annotations

import http.server
import io
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import pytest
from moto.server import ThreadedMotoServer
from PIL import Image

from tests.docs.examples import StandIn
from tests.doubles.comfyui.comfy_double import media
from tests.integration.harness import WorkerProcess, make_worker, write_small_model_set

BUCKET = "docs-outputs"
S3_KEYS = {"id": "AKIADOCSEXAMPLES01", "secret": "docs-secret-that-must-not-leak"}
# Long enough for every frame count the templates accept (at most 257), so a control video never
# limits an example's frames; 129 = 8 x 16 + 1 keeps the 8n+1 rule should it be used whole.
STAND_IN_VIDEO_FRAMES = 257
EXTENSION_MIME = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".mp4": "video/mp4",
    ".mov": "video/mp4",
    ".webm": "video/webm",
}


def _image(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (96, 64), (30, 90, 200)).save(buffer, format=fmt)
    return buffer.getvalue()


def stand_in(mime: str) -> StandIn:
    """A complete, small media file of a given type (images by Pillow, videos by the double's writers)."""
    if mime == "image/png":
        return StandIn(mime, _image("PNG"))
    if mime == "image/jpeg":
        return StandIn(mime, _image("JPEG"))
    if mime == "image/webp":
        return StandIn(mime, _image("WEBP"))
    if mime in ("video/mp4", "video/quicktime"):
        return StandIn("video/mp4", media.encode_mp4_stand_in(128, 96, STAND_IN_VIDEO_FRAMES, 24.0))
    if mime == "video/webm":
        return StandIn(mime, media.encode_webm_stand_in(128, 96, STAND_IN_VIDEO_FRAMES, 24.0))
    raise ValueError(f"no stand-in for media type {mime!r}; add one to tests/docs/conftest.py")


@pytest.fixture(scope="session")
def media_base_url() -> Iterator[str]:
    """Serves a stand-in for any path whose extension names a media type (what example.com would)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            suffix = Path(urlsplit(self.path).path).suffix.lower()
            if suffix not in EXTENSION_MIME:
                self.send_error(404, f"no stand-in for {suffix or 'a path without extension'}")
                return
            file = stand_in(EXTENSION_MIME[suffix])
            self.send_response(200)
            self.send_header("Content-Type", file.mime)
            self.send_header("Content-Length", str(len(file.data)))
            self.end_headers()
            self.wfile.write(file.data)

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_KEYS["id"],
        aws_secret_access_key=S3_KEYS["secret"],
        region_name="us-east-1",
    ).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


@pytest.fixture(scope="session")
def docs_worker(tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str) -> Iterator[WorkerProcess]:
    """The worker as a user runs it locally, with the documented defaults plus loopback media."""
    root = tmp_path_factory.mktemp("docs-worker")
    lock_path, models = write_small_model_set(root)
    worker = make_worker(
        root,
        MODELS_LOCK=str(lock_path),
        MODELS_DIR=str(models),
        MODEL_SET="fp8",
        # the media server stands in for example.com on loopback, which the worker refuses by default
        MEDIA_ALLOW_PRIVATE_URLS="true",
        BUCKET_ENDPOINT_URL=s3_endpoint,
        BUCKET_ACCESS_KEY_ID=S3_KEYS["id"],
        BUCKET_SECRET_ACCESS_KEY=S3_KEYS["secret"],
        BUCKET_NAME=BUCKET,
        BUCKET_REGION="us-east-1",
    )
    worker.start()
    yield worker
    worker.stop()
