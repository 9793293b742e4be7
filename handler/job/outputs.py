"""A prompt's output files: found, described, and returned inline or as bucket URLs.

ComfyUI reports outputs per node under different keys: ``SaveImage``/``SaveVideo``/
``SaveAnimated*`` under ``images`` (videos with ``animated: [true]``), VideoHelperSuite under
``gifs``, audio under ``audio``. Any list item with ``filename`` and ``type`` is a file; ``temp``
previews are skipped unless asked for. Files are read from ComfyUI's output folder directly.
"""

from __future__ import annotations

import binascii
import hashlib
import mimetypes
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from handler.comfy.errors import JobFailure

VIDEO_EXTENSIONS = frozenset({".mp4", ".webm", ".mov", ".mkv", ".avi", ".m4v", ".gif"})
ANIMATED_IMAGE_EXTENSIONS = frozenset({".webp", ".png", ".apng"})
AUDIO_EXTENSIONS = frozenset({".flac", ".wav", ".mp3", ".ogg", ".opus", ".m4a", ".aac"})
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".exr"})
_EXTRA_MIME = {
    ".webp": "image/webp",
    ".webm": "video/webm",
    ".flac": "audio/flac",
    ".mkv": "video/x-matroska",
    ".opus": "audio/opus",
    ".m4a": "audio/mp4",
    ".exr": "image/x-exr",
    ".apng": "image/apng",
}
# JSON around each inline item (keys, names, mime, hash) and the rest of a result, generously.
ITEM_OVERHEAD_BYTES = 512
READ_CHUNK = 3 << 20  # a multiple of 3, so each chunk base64-encodes without padding


class OutputList(list):
    """The result's output items, with a short repr.

    The RunPod SDK formats every handler result into DEBUG log f-strings, evaluated even when
    DEBUG is off; a 20 MB base64 payload costs ~150 ms to format and would be copied into logs.
    The JSON encoders treat this as the plain list it is. (A list subclass rather than a str
    subclass: making a str subclass copies the whole payload once more.)
    """

    __slots__ = ()

    def __repr__(self) -> str:
        names = ", ".join(str(item.get("filename")) for item in self if isinstance(item, dict))
        return f"<{len(self)} outputs: {names}>"


@dataclass(frozen=True)
class OutputRef:
    node_id: str
    key: str
    filename: str
    subfolder: str
    type: str
    animated: bool = False


@dataclass(frozen=True)
class OutputFile:
    ref: OutputRef
    path: Path
    size: int
    kind: Literal["video", "image", "audio", "file"]
    mime: str


def collect_output_refs(outputs: Mapping[str, Any], *, include_temp: bool = False) -> list[OutputRef]:
    """Every file item in ComfyUI's per-node outputs, whatever its key (pure)."""
    refs: list[OutputRef] = []
    seen: set[tuple[str, str, str]] = set()
    for node_id, node_output in outputs.items():
        if not isinstance(node_output, Mapping):
            continue
        animated_flags = node_output.get("animated")
        animated = isinstance(animated_flags, list) and any(flag is True for flag in animated_flags)
        for key, items in node_output.items():
            if not isinstance(items, list):
                continue
            for item in items:
                if not isinstance(item, Mapping) or not isinstance(item.get("filename"), str):
                    continue
                item_type = str(item.get("type") or "output")
                if item_type == "input" or (item_type == "temp" and not include_temp):
                    continue
                ref = OutputRef(
                    node_id=str(node_id),
                    key=str(key),
                    filename=item["filename"],
                    subfolder=str(item.get("subfolder") or ""),
                    type=item_type,
                    animated=animated and key == "images",
                )
                identity = (ref.type, ref.subfolder, ref.filename)
                if identity not in seen:
                    seen.add(identity)
                    refs.append(ref)
    return refs


def classify(filename: str, animated: bool = False) -> tuple[Literal["video", "image", "audio", "file"], str]:
    """(kind, mime) from the file extension: video is told from image by extension, not by key."""
    suffix = PurePosixPath(filename).suffix.lower()
    mime = _EXTRA_MIME.get(suffix) or mimetypes.types_map.get(suffix) or "application/octet-stream"
    if suffix in VIDEO_EXTENSIONS:
        return "video", mime
    if suffix in AUDIO_EXTENSIONS:
        return "audio", mime
    if suffix in IMAGE_EXTENSIONS:
        # An animated webp/png is a video for the client's purposes.
        return ("video" if animated and suffix in ANIMATED_IMAGE_EXTENSIONS else "image"), mime
    return "file", mime


def resolve_output_path(roots: Mapping[str, Path], ref: OutputRef) -> Path:
    """The file on disk for an output item; never outside ComfyUI's folder for its type."""
    root = roots.get(ref.type)
    if root is None:
        raise JobFailure(f"ComfyUI reported an output of unknown type {ref.type!r}: {ref.filename}")
    base = root.resolve()
    path = (base / ref.subfolder / ref.filename).resolve()
    if base != path and base not in path.parents:
        raise JobFailure(
            f"ComfyUI reported an output outside its {ref.type} folder: {ref.subfolder}/{ref.filename}"
        )
    return path


def stat_outputs(refs: Iterable[OutputRef], roots: Mapping[str, Path]) -> list[OutputFile]:
    files = []
    for ref in refs:
        path = resolve_output_path(roots, ref)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise JobFailure(
                f"ComfyUI reported output {ref.subfolder + '/' if ref.subfolder else ''}{ref.filename} "
                f"(node {ref.node_id}) but the file is not in its {ref.type} folder"
            ) from None
        kind, mime = classify(ref.filename, ref.animated)
        files.append(OutputFile(ref=ref, path=path, size=size, kind=kind, mime=mime))
    return files


def inline_size(files: Iterable[OutputFile]) -> int:
    """Bytes the files add to a JSON result when inlined as base64."""
    return sum(4 * ((f.size + 2) // 3) + ITEM_OVERHEAD_BYTES for f in files)


def choose_delivery(
    mode: str, *, inline_bytes: int, limit: int, bucket_available: bool, file_count: int
) -> Literal["inline", "url", "none"]:
    """Decide how outputs travel back (pure); a result RunPod would drop is never chosen."""
    if file_count == 0:
        return "none"
    mb = inline_bytes / 1e6
    if mode == "url":
        if not bucket_available:
            raise JobFailure(
                "output.delivery is 'url' but no bucket is configured: set BUCKET_ENDPOINT_URL, "
                "BUCKET_ACCESS_KEY_ID and BUCKET_SECRET_ACCESS_KEY, or send s3Config with the request"
            )
        return "url"
    if inline_bytes <= limit:
        return "inline"
    if mode == "inline":
        raise JobFailure(
            f"the outputs need {mb:.1f} MB inline, over INLINE_MAX_BYTES ({limit / 1e6:.1f} MB, kept below "
            "RunPod's 10 MB result limit); use output.delivery 'auto' or 'url' with a bucket"
        )
    if bucket_available:
        return "url"
    raise JobFailure(
        f"the outputs need {mb:.1f} MB inline, over INLINE_MAX_BYTES ({limit / 1e6:.1f} MB, kept below RunPod's "
        "10 MB result limit, above which RunPod drops results), and no bucket is configured: set "
        "BUCKET_ENDPOINT_URL, BUCKET_ACCESS_KEY_ID and BUCKET_SECRET_ACCESS_KEY (or send s3Config) to get URLs"
    )


# hashlib releases the GIL on large buffers: hashing runs on this thread while the caller's
# thread base64-encodes, so the hash costs (almost) no time on a multi-core worker.
_hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="output-hash")


def read_inline(path: Path) -> tuple[str, str]:
    """(base64 text, sha256) in one pass over the file.

    Chunks are encoded as they are read, so peak memory is the encoded text twice (pieces, then
    the joined text) rather than the raw bytes plus two copies of their encoding.
    """
    digest = hashlib.sha256()
    pieces: list[str] = []
    pending: Future[None] | None = None
    with path.open("rb", buffering=0) as handle:
        while chunk := handle.read(READ_CHUNK):
            if pending is not None:
                pending.result()  # keep the hash updates in file order
            pending = _hasher.submit(digest.update, chunk)
            pieces.append(binascii.b2a_base64(chunk, newline=False).decode("ascii"))
    if pending is not None:
        pending.result()
    text = "".join(pieces)
    pieces.clear()
    return text, digest.hexdigest()


def describe(file: OutputFile, sha256: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": file.kind,
        "filename": file.ref.filename,
        "mime": file.mime,
        "size": file.size,
        "sha256": sha256,
        "node_id": file.ref.node_id,
    }
    if file.ref.key != "images":
        item["key"] = file.ref.key
    return item
