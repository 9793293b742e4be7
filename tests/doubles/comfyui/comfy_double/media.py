"""Media files the double writes and reads, with the standard library only.

Writers produce real, structurally valid files whose size follows what they hold:

- PNG (SaveImage, PreviewImage, SaveImageWebsocket): real images of a solid colour, with ComfyUI's
  ``prompt``/``workflow`` text chunks;
- animated PNG (SaveAnimatedPNG) and WebP (SaveAnimatedWEBP): real animations of solid frames
  (lossless VP8L frames whose prefix codes each hold one symbol);
- MP4 (SaveVideo): **a stand-in, not an encoder**. The ISO-BMFF box structure is valid (ftyp,
  moov with one video track and its sample tables, mdat) and its size grows with
  frames x width x height, but the samples are filler bytes, not H.264;
- WebM (SaveWEBM) and FLAC (SaveAudio): likewise stand-ins with valid container headers.

Readers sniff what LoadImage/LoadVideo/LoadAudio need (dimensions, frame count, duration) and
raise the errors ComfyUI raises for files they cannot identify.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class UnidentifiedImageError(OSError):
    """Raised like PIL's for an input file that is not an image."""


UnidentifiedImageError.__module__ = "PIL"


class InvalidDataError(ValueError):
    """Raised like PyAV's for a video container it cannot parse."""


InvalidDataError.__module__ = "av.error"


def rgb_of(color: int) -> tuple[int, int, int]:
    """ComfyUI's EmptyImage colour: an int 0xRRGGBB."""
    return (color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF


# ----------------------------------------------------------------------------------------- PNG


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def _solid_idat(width: int, height: int, rgb: tuple[int, int, int], level: int) -> bytes:
    row = b"\x00" + bytes(rgb) * width
    return zlib.compress(row * height, level)


def png_text_chunks(metadata: Mapping[str, Any] | None) -> list[bytes]:
    """``tEXt`` chunks the way ComfyUI's SaveImage writes prompt and extra_pnginfo."""
    chunks = []
    for key, value in (metadata or {}).items():
        text = value if isinstance(value, str) else json.dumps(value)
        chunks.append(
            _png_chunk(
                b"tEXt", key.encode("latin-1", "replace") + b"\x00" + text.encode("latin-1", "replace")
            )
        )
    return chunks


def encode_png(
    width: int,
    height: int,
    rgb: tuple[int, int, int],
    metadata: Mapping[str, Any] | None = None,
    level: int = 4,
) -> bytes:
    """A real RGB PNG of one colour."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    parts = [PNG_SIGNATURE, _png_chunk(b"IHDR", header)]
    parts.extend(png_text_chunks(metadata))
    parts.append(_png_chunk(b"IDAT", _solid_idat(width, height, rgb, level)))
    parts.append(_png_chunk(b"IEND", b""))
    return b"".join(parts)


def encode_apng(
    width: int,
    height: int,
    frames: list[tuple[int, int, int]],
    fps: float,
    metadata: Mapping[str, Any] | None = None,
    level: int = 4,
) -> bytes:
    """A real animated PNG (acTL/fcTL/fdAT) of solid frames."""
    delay_num, delay_den = max(1, round(1000 / max(fps, 0.01))), 1000
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    parts = [
        PNG_SIGNATURE,
        _png_chunk(b"IHDR", header),
        _png_chunk(b"acTL", struct.pack(">II", len(frames), 0)),
    ]
    parts.extend(png_text_chunks(metadata))
    sequence = 0
    for index, rgb in enumerate(frames):
        fctl = struct.pack(">IIIIIHHBB", sequence, width, height, 0, 0, delay_num, delay_den, 0, 0)
        parts.append(_png_chunk(b"fcTL", fctl))
        sequence += 1
        data = _solid_idat(width, height, rgb, level)
        if index == 0:
            parts.append(_png_chunk(b"IDAT", data))
        else:
            parts.append(_png_chunk(b"fdAT", struct.pack(">I", sequence) + data))
            sequence += 1
    parts.append(_png_chunk(b"IEND", b""))
    return b"".join(parts)


# ---------------------------------------------------------------------------------------- WebP


class _BitWriter:
    """LSB-first bit packing, as VP8L uses."""

    def __init__(self) -> None:
        self.value = 0
        self.bits = 0

    def write(self, value: int, count: int) -> None:
        self.value |= (value & ((1 << count) - 1)) << self.bits
        self.bits += count

    def to_bytes(self) -> bytes:
        return self.value.to_bytes((self.bits + 7) // 8, "little")


def _vp8l_solid(width: int, height: int, argb: tuple[int, int, int, int]) -> bytes:
    """A lossless VP8L bitstream of one colour: five one-symbol prefix codes, zero bits per pixel."""
    alpha, red, green, blue = argb
    writer = _BitWriter()
    writer.write(0x2F, 8)
    writer.write(width - 1, 14)
    writer.write(height - 1, 14)
    writer.write(1 if alpha != 255 else 0, 1)
    writer.write(0, 3)  # version
    writer.write(0, 1)  # no transform
    writer.write(0, 1)  # no colour cache
    writer.write(0, 1)  # no meta prefix codes
    for symbol in (green, red, blue, alpha, 0):  # green, red, blue, alpha, distance
        writer.write(1, 1)  # simple code
        writer.write(0, 1)  # one symbol
        if symbol > 1:
            writer.write(1, 1)
            writer.write(symbol, 8)
        else:
            writer.write(0, 1)
            writer.write(symbol, 1)
    return writer.to_bytes()


def _riff_chunk(kind: bytes, data: bytes) -> bytes:
    padded = data + (b"\x00" if len(data) % 2 else b"")
    return kind + struct.pack("<I", len(data)) + padded


def encode_webp(width: int, height: int, frames: list[tuple[int, int, int]], fps: float) -> bytes:
    """A real WebP: still for one frame, animated (VP8X/ANIM/ANMF) for more."""
    if len(frames) == 1:
        body = _riff_chunk(b"VP8L", _vp8l_solid(width, height, (255, *frames[0])))
    else:
        duration = max(1, round(1000 / max(fps, 0.01)))
        vp8x = (
            struct.pack("<B3x", 0x02) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
        )
        body = _riff_chunk(b"VP8X", vp8x) + _riff_chunk(b"ANIM", struct.pack("<IH", 0xFFFFFFFF, 0))
        for rgb in frames:
            frame = _riff_chunk(b"VP8L", _vp8l_solid(width, height, (255, *rgb)))
            header = (
                (0).to_bytes(3, "little")
                + (0).to_bytes(3, "little")
                + (width - 1).to_bytes(3, "little")
                + (height - 1).to_bytes(3, "little")
                + duration.to_bytes(3, "little")
                + b"\x00"
            )
            body += _riff_chunk(b"ANMF", header + frame)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


# ------------------------------------------------------------------------------- MP4 stand-in


def _box(kind: bytes, *payload: bytes) -> bytes:
    data = b"".join(payload)
    return struct.pack(">I", 8 + len(data)) + kind + data


def _full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *payload)


def stand_in_sample_size(width: int, height: int) -> int:
    """Bytes per frame in the MP4/WebM stand-ins: grows with the frame area."""
    return 64 + (width * height) // 200


def _filler(size: int, seed: bytes) -> bytes:
    block = hashlib.sha256(seed).digest() * 128  # 4 KiB of deterministic filler
    repeats, remainder = divmod(size, len(block))
    return block * repeats + block[:remainder]


def encode_mp4_stand_in(width: int, height: int, frames: int, fps: float, with_audio: bool = False) -> bytes:
    """A structurally valid MP4 (one 'avc1' video track) whose samples are filler, not H.264.

    This is a stand-in for tests, not an encoder: players will not decode the pictures, but box
    parsers, size checks and Content-Type sniffing see a real ISO-BMFF file.
    """
    frames = max(1, frames)
    sample_delta = 1000
    timescale = max(1, round(max(fps, 0.001) * sample_delta))  # exact for fractional rates too
    duration = sample_delta * frames
    sample_size = stand_in_sample_size(width, height)
    ftyp = _box(b"ftyp", b"isom", struct.pack(">I", 0x200), b"isom", b"iso2", b"avc1", b"mp41")
    identity = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    mvhd = _full_box(
        b"mvhd",
        0,
        0,
        struct.pack(">IIII", 0, 0, timescale, duration),
        struct.pack(">IH10x", 0x10000, 0x100),
        identity,
        bytes(24),
        struct.pack(">I", 2),
    )
    tkhd = _full_box(
        b"tkhd",
        0,
        3,
        struct.pack(">IIIII", 0, 0, 1, 0, duration),
        bytes(8),
        struct.pack(">hhhH", 0, 0, 0, 0),
        identity,
        struct.pack(">II", width << 16, height << 16),
    )
    mdhd = _full_box(
        b"mdhd", 0, 0, struct.pack(">IIII", 0, 0, timescale, duration), struct.pack(">HH", 0x55C4, 0)
    )
    hdlr = _full_box(b"hdlr", 0, 0, struct.pack(">I", 0), b"vide", bytes(12), b"VideoHandler\x00")
    avcc = _box(b"avcC", bytes([1, 0x64, 0, 0x1F, 0xFF, 0xE0, 0x00]))
    avc1 = _box(
        b"avc1",
        bytes(6),
        struct.pack(">H", 1),
        bytes(16),
        struct.pack(">HH", width, height),
        struct.pack(">IIIH", 0x480000, 0x480000, 0, 1),
        bytes(32),
        struct.pack(">Hh", 0x18, -1),
        avcc,
    )
    stsd = _full_box(b"stsd", 0, 0, struct.pack(">I", 1), avc1)
    stts = _full_box(b"stts", 0, 0, struct.pack(">III", 1, frames, sample_delta))
    stsc = _full_box(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, frames, 1))
    stsz = _full_box(b"stsz", 0, 0, struct.pack(">II", sample_size, frames))
    mdat_payload = _filler(sample_size * frames, f"{width}x{height}x{frames}".encode())
    if with_audio:
        mdat_payload += _filler(frames * 32, b"audio")

    def build(chunk_offset: int) -> bytes:
        stco = _full_box(b"stco", 0, 0, struct.pack(">II", 1, chunk_offset))
        stbl = _box(b"stbl", stsd, stts, stsc, stsz, stco)
        dinf = _box(b"dinf", _full_box(b"dref", 0, 0, struct.pack(">I", 1), _full_box(b"url ", 0, 1)))
        minf = _box(b"minf", _full_box(b"vmhd", 0, 1, bytes(8)), dinf, stbl)
        trak = _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr, minf))
        return _box(b"moov", mvhd, trak)

    moov_size = len(build(0))
    moov = build(len(ftyp) + moov_size + 8)
    return ftyp + moov + _box(b"mdat", mdat_payload)


def _iter_boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    offset = start
    while offset + 8 <= end:
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        header = 8
        if size == 1:
            if offset + 16 > end:
                raise InvalidDataError("truncated box header")
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
            header = 16
        elif size == 0:
            size = end - offset
        if size < header or offset + size > end:
            raise InvalidDataError("box runs past the end of the file")
        yield kind, offset + header, offset + size
        offset += size


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    frames: int
    fps: float
    has_audio: bool


def probe_mp4(path: Path) -> VideoInfo:
    """Width, height, frame count and fps of the first video track of an ISO-BMFF file.

    Raises:
        InvalidDataError: not an ISO-BMFF file, or no video track, worded like PyAV.
    """
    data = path.read_bytes()
    message = f"[Errno 1094995529] Invalid data found when processing input: '{path}'"
    try:
        boxes = {kind: (start, end) for kind, start, end in _iter_boxes(data, 0, len(data))}
        if b"ftyp" not in boxes or b"moov" not in boxes:
            raise InvalidDataError(message)
        video: VideoInfo | None = None
        has_audio = False
        moov_start, moov_end = boxes[b"moov"]
        for kind, start, end in _iter_boxes(data, moov_start, moov_end):
            if kind != b"trak":
                continue
            track = _probe_track(data, start, end)
            if track is None:
                continue
            if track[0] == b"soun":
                has_audio = True
            elif track[0] == b"vide" and video is None:
                video = VideoInfo(track[1], track[2], track[3], track[4], False)
    except (InvalidDataError, struct.error) as exc:
        raise InvalidDataError(message) from exc
    if video is None:
        raise InvalidDataError(message)
    return VideoInfo(video.width, video.height, video.frames, video.fps, has_audio)


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for child_kind, child_start, child_end in _iter_boxes(data, start, end):
        if child_kind == kind:
            return child_start, child_end
    return None


def _probe_track(data: bytes, start: int, end: int) -> tuple[bytes, int, int, int, float] | None:
    tkhd = _child(data, start, end, b"tkhd")
    mdia = _child(data, start, end, b"mdia")
    if tkhd is None or mdia is None:
        return None
    version = data[tkhd[0]]
    width_offset = tkhd[1] - 8
    width, height = struct.unpack(">II", data[width_offset : width_offset + 8])
    hdlr = _child(data, *mdia, b"hdlr")
    mdhd = _child(data, *mdia, b"mdhd")
    handler = data[hdlr[0] + 8 : hdlr[0] + 12] if hdlr else b""
    timescale, duration = 1000, 0
    if mdhd:
        if data[mdhd[0]] == 1:
            timescale, duration = struct.unpack(">IQ", data[mdhd[0] + 20 : mdhd[0] + 32])
        else:
            timescale, duration = struct.unpack(">II", data[mdhd[0] + 12 : mdhd[0] + 20])
    frames = 0
    minf = _child(data, *mdia, b"minf")
    stbl = _child(data, *minf, b"stbl") if minf else None
    stsz = _child(data, *stbl, b"stsz") if stbl else None
    if stsz:
        frames = struct.unpack(">I", data[stsz[0] + 8 : stsz[0] + 12])[0]
    seconds = duration / timescale if timescale else 0.0
    fps = frames / seconds if seconds > 0 else 0.0
    del version
    return handler, width >> 16, height >> 16, frames, round(fps, 3)


# ------------------------------------------------------------------------------ WebM and FLAC


def _ebml_size(size: int) -> bytes:
    return (size | (1 << 56)).to_bytes(8, "big")


def _ebml(element_id: bytes, payload: bytes) -> bytes:
    return element_id + _ebml_size(len(payload)) + payload


def encode_webm_stand_in(width: int, height: int, frames: int, fps: float) -> bytes:
    """A WebM stand-in: a valid EBML header and Segment/Info/Tracks, then filler in a Void element."""
    header = _ebml(
        b"\x1a\x45\xdf\xa3",
        _ebml(b"\x42\x82", b"webm") + _ebml(b"\x42\x87", b"\x04") + _ebml(b"\x42\x85", b"\x02"),
    )
    info = _ebml(b"\x15\x49\xa9\x66", _ebml(b"\x2a\xd7\xb1", struct.pack(">I", 1000000)))
    video = _ebml(
        b"\xe0", _ebml(b"\xb0", struct.pack(">H", width)) + _ebml(b"\xba", struct.pack(">H", height))
    )
    track = _ebml(b"\xae", _ebml(b"\xd7", b"\x01") + _ebml(b"\x86", b"V_VP9") + video)
    tracks = _ebml(b"\x16\x54\xae\x6b", track)
    filler = _ebml(b"\xec", _filler(stand_in_sample_size(width, height) * max(1, frames), b"webm"))
    return header + _ebml(b"\x18\x53\x80\x67", info + tracks + filler)


def encode_flac_stand_in(
    sample_rate: int, channels: int, seconds: float, metadata: Mapping[str, Any] | None
) -> bytes:
    """A FLAC stand-in: STREAMINFO, VORBIS_COMMENT (ComfyUI's metadata) and padding, no frames."""
    total_samples = int(sample_rate * max(seconds, 0.0))
    packed = (
        (sample_rate << 44) | ((channels - 1) << 41) | ((16 - 1) << 36) | (total_samples & ((1 << 36) - 1))
    )
    streaminfo = (
        struct.pack(">HH", 4096, 4096) + (0).to_bytes(3, "big") * 2 + packed.to_bytes(8, "big") + bytes(16)
    )
    vendor = b"comfyui-double"
    comments = [
        f"{key}={value if isinstance(value, str) else json.dumps(value)}".encode()
        for key, value in (metadata or {}).items()
    ]
    vorbis = struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", len(comments))
    for comment in comments:
        vorbis += struct.pack("<I", len(comment)) + comment
    padding = bytes(min(16 * 1024 * 1024, max(0, total_samples * channels // 8)))

    def block(kind: int, payload: bytes, last: bool) -> bytes:
        return bytes([kind | (0x80 if last else 0)]) + len(payload).to_bytes(3, "big") + payload

    return b"fLaC" + block(0, streaminfo, False) + block(4, vorbis, False) + block(1, padding, True)


# ------------------------------------------------------------------------------------ readers


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    frames: int
    rgb: tuple[int, int, int]


def probe_image(path: Path) -> ImageInfo:
    """Dimensions (and frame count of animated PNGs) of PNG, JPEG, GIF, BMP and WebP files.

    The colour stands for the pixels: the double does not decode them, so images loaded from
    files carry a colour derived from the file's bytes.

    Raises:
        UnidentifiedImageError: ``cannot identify image file '<path>'``, as PIL says.
    """
    data = path.read_bytes()
    colour = tuple(hashlib.sha256(data).digest()[:3])
    try:
        width, height, frames = _image_dimensions(data)
    except (ValueError, struct.error, IndexError):
        width = height = 0
        frames = 0
    if width <= 0 or height <= 0:
        raise UnidentifiedImageError(f"cannot identify image file '{path}'")
    return ImageInfo(width, height, frames, colour)  # type: ignore[arg-type]


def _image_dimensions(data: bytes) -> tuple[int, int, int]:
    if data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        frames = 1
        actl = data.find(b"acTL")
        if actl != -1:
            frames = struct.unpack(">I", data[actl + 4 : actl + 8])[0] or 1
        return width, height, frames
    if data[:6] in (b"GIF87a", b"GIF89a"):
        width, height = struct.unpack("<HH", data[6:10])
        return width, height, 1
    if data[:2] == b"BM":
        width, height = struct.unpack("<ii", data[18:26])
        return width, abs(height), 1
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        kind = data[12:16]
        if kind == b"VP8X":
            width = int.from_bytes(data[24:27], "little") + 1
            height = int.from_bytes(data[27:30], "little") + 1
            return width, height, max(1, data.count(b"ANMF"))
        if kind == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, 1
        if kind == b"VP8 ":
            width, height = struct.unpack("<HH", data[26:30])
            return width & 0x3FFF, height & 0x3FFF, 1
        raise ValueError("unknown WebP chunk")
    if data[:2] == b"\xff\xd8":
        offset = 2
        while offset + 4 <= len(data):
            if data[offset] != 0xFF:
                raise ValueError("bad JPEG marker")
            marker = data[offset + 1]
            length = struct.unpack(">H", data[offset + 2 : offset + 4])[0]
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                height, width = struct.unpack(">HH", data[offset + 5 : offset + 9])
                return width, height, 1
            offset += 2 + length
        raise ValueError("no JPEG frame header")
    raise ValueError("unknown image format")


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    channels: int
    seconds: float


def probe_audio(path: Path) -> AudioInfo:
    """Sample rate, channels and duration of WAV files; other audio gets CD-quality defaults.

    Raises:
        InvalidDataError: a WAV file whose header is broken.
    """
    data = path.read_bytes()
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        offset = 12
        sample_rate = channels = bits = 0
        while offset + 8 <= len(data):
            kind, size = struct.unpack("<4sI", data[offset : offset + 8])
            if kind == b"fmt ":
                _, channels, sample_rate, _, _, bits = struct.unpack(
                    "<HHIIHH", data[offset + 8 : offset + 24]
                )
            elif kind == b"data" and sample_rate and channels and bits:
                frames = size // (channels * max(1, bits // 8))
                return AudioInfo(sample_rate, channels, frames / sample_rate)
            offset += 8 + size + (size % 2)
        raise InvalidDataError(f"[Errno 1094995529] Invalid data found when processing input: '{path}'")
    if data[:4] == b"fLaC" and len(data) >= 26:
        packed = int.from_bytes(data[18:26], "big")
        sample_rate = packed >> 44
        channels = ((packed >> 41) & 0x7) + 1
        total = packed & ((1 << 36) - 1)
        if sample_rate:
            return AudioInfo(sample_rate, channels, total / sample_rate)
    return AudioInfo(44100, 2, 1.0)


def deterministic_bytes(size: int, seed: str, extension: str) -> Iterator[bytes]:
    """``size`` bytes, in chunks, that depend only on ``seed``; MP4s get a real box header."""
    head = b""
    if extension.lower() == "mp4" and size >= 40:
        head = _box(b"ftyp", b"isom", struct.pack(">I", 0x200), b"isom", b"mp41")
        head += struct.pack(">I", size - len(head)) + b"mdat"
    elif extension.lower() == "png" and size >= len(PNG_SIGNATURE):
        head = PNG_SIGNATURE
    head = head[:size]
    yield head
    remaining = size - len(head)
    block = hashlib.sha256(seed.encode()).digest() * 32768  # 1 MiB
    while remaining > 0:
        piece = block[: min(remaining, len(block))]
        yield piece
        remaining -= len(piece)
