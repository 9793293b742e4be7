"""What each node class does when the double executes it.

Core nodes whose effect a bridge can observe are real: EmptyImage, LoadImage, LoadVideo,
LoadAudio, the image resizers, GetImageSize (sends the binary TEXT frame), CreateVideo,
GetVideoComponents, SaveImage, PreviewImage, SaveVideo, SaveWEBM, SaveAnimatedWEBP/PNG,
SaveAudio, PreviewAudio, PreviewAny, SaveImageWebsocket and the Primitive* nodes. Samplers send
one ``progress`` tick per step (steps from their ``steps`` input or from the linked sigmas).
Every other class executes generically: it returns placeholders of its declared output types,
carrying width/height/frames hints so that the images and videos downstream have plausible sizes.

The double's fault-injection classes (all in object_info, category ``_double/fault injection``):

==================  ==========================================================================
class               behaviour
==================  ==========================================================================
DoubleSleep         ``seconds`` FLOAT, optional ``ticks`` INT: sleeps, sending ``ticks``
                    progress updates; an interrupt takes effect at the next tick (with no
                    ticks, at the next node, like a node without a progress hook).
DoubleFail          ``message``/``exception_type`` STRING: raises; ``execution_error`` carries
                    that type (e.g. ``torch.OutOfMemoryError`` adds ComfyUI's OOM tips), the
                    message plus ``"\\n"`` and a real traceback list.
DoubleCrash         ``exit_code`` INT: the server process exits at once (``os._exit``).
DoubleHang          never finishes; ignores interrupts.
DoubleDropSockets   closes every WebSocket, then finishes; the prompt lands in history.
DoubleOutputFile    ``size_bytes`` INT, ``extension``/``filename_prefix`` STRING, optional
                    ``key`` STRING (default ``images``): writes an output file of that many
                    deterministic bytes, reported under ``key`` (``gifs`` gets
                    VideoHelperSuite-style ``format``/``frame_rate``/``fullpath`` fields).
DoubleValue         optional ``seed`` INT: an output node that writes nothing and reports
                    ``{"text": [seed]}``; a zero-time workflow.
==================  ==========================================================================

All of them take an optional ``seed`` INT and an optional ``value`` (any type, passed through),
and all but DoubleValue run every time (never answered from the cache), like nodes whose
``IS_CHANGED`` returns NaN.
"""

from __future__ import annotations

import builtins
import json
import math
import os
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import media
from .folders import FolderPaths, get_save_image_path
from .schema import DOUBLE_NODE_CLASSES, is_link

# Classes that run every time, like ComfyUI nodes whose IS_CHANGED never compares equal
# (SaveImageWebsocket returns the time).
NEVER_CACHED = frozenset(name for name in DOUBLE_NODE_CLASSES if name != "DoubleValue") | {
    "SaveImageWebsocket"
}

VIDEO_EXTENSIONS = frozenset({"mp4", "webm", "mov", "mkv", "avi", "gif"})


# ------------------------------------------------------------------------------------- values


@dataclass
class Images:
    """An IMAGE batch: size, count and a colour per frame (pixels are not carried)."""

    width: int
    height: int
    count: int
    rgb: tuple[int, int, int] = (0, 0, 0)

    @property
    def meta(self) -> dict[str, Any]:
        return {"width": self.width, "height": self.height, "frames": self.count}

    def frame_colours(self) -> list[tuple[int, int, int]]:
        return [self.rgb] * self.count

    def __str__(self) -> str:
        return f"IMAGE[{self.count}, {self.height}, {self.width}, 3]"


@dataclass
class Mask:
    width: int
    height: int
    count: int

    @property
    def meta(self) -> dict[str, Any]:
        return {"width": self.width, "height": self.height, "frames": self.count}

    def __str__(self) -> str:
        return f"MASK[{self.count}, {self.height}, {self.width}]"


@dataclass
class Audio:
    sample_rate: int
    channels: int
    seconds: float

    @property
    def meta(self) -> dict[str, Any]:
        return {"seconds": self.seconds}

    def __str__(self) -> str:
        return f"AUDIO[{self.channels}ch, {self.sample_rate} Hz, {self.seconds:.3f} s]"


@dataclass
class Video:
    width: int
    height: int
    frames: int
    fps: float
    audio: Audio | None = None

    @property
    def meta(self) -> dict[str, Any]:
        return {"width": self.width, "height": self.height, "frames": self.frames, "fps": self.fps}

    def __str__(self) -> str:
        return f"VIDEO[{self.frames} x {self.width}x{self.height} @ {self.fps} fps]"


@dataclass
class Placeholder:
    """The output of a generically executed node: its type plus size hints."""

    type: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"<{self.type} {json.dumps(self.meta, sort_keys=True)}>"


def value_type(value: Any) -> str | None:
    """The ComfyUI type name a value stands for."""
    if isinstance(value, Placeholder):
        return value.type
    return {Images: "IMAGE", Mask: "MASK", Video: "VIDEO", Audio: "AUDIO"}.get(type(value))


def value_meta(value: Any) -> dict[str, Any]:
    meta = getattr(value, "meta", None)
    return dict(meta) if isinstance(meta, dict) else {}


# ------------------------------------------------------------------------------------ context


class InterruptProcessingException(Exception):
    """ComfyUI's interrupt signal (comfy.model_management.InterruptProcessingException)."""


InterruptProcessingException.__module__ = "comfy.model_management"


@dataclass
class NodeContext:
    """What a node implementation may use while it runs."""

    node_id: str
    class_type: str
    prompt_id: str
    prompt: Mapping[str, Any]
    extra_data: Mapping[str, Any]
    folders: FolderPaths
    disable_metadata: bool
    step_seconds: float
    progress: Callable[..., None]
    check_interrupt: Callable[[], None]
    send_text: Callable[[str], None]
    drop_sockets: Callable[[], None]
    crash: Callable[[int], None]
    hang: Callable[[], None]

    def metadata(self) -> dict[str, Any] | None:
        """The ``prompt`` and ``extra_pnginfo`` entries ComfyUI embeds in saved files."""
        if self.disable_metadata:
            return None
        embedded: dict[str, Any] = {"prompt": self.prompt}
        extra = self.extra_data.get("extra_pnginfo")
        if isinstance(extra, Mapping):
            embedded.update(extra)
        return embedded


NodeResult = tuple[tuple[Any, ...], dict[str, Any] | None]
NodeFunction = Callable[[NodeContext, dict[str, Any]], NodeResult]

IMPLEMENTATIONS: dict[str, NodeFunction] = {}


def implements(*class_types: str) -> Callable[[NodeFunction], NodeFunction]:
    def register(function: NodeFunction) -> NodeFunction:
        for class_type in class_types:
            IMPLEMENTATIONS[class_type] = function
        return function

    return register


def _saved(filename: str, subfolder: str, type_: str) -> dict[str, str]:
    return {"filename": filename, "subfolder": subfolder, "type": type_}


def _write_atomic(path: Path, chunks: Any) -> None:
    """Write to a temporary name next to ``path`` and rename: readers never see half a file."""
    temporary = path.with_name(f".{path.name}.part")
    with open(temporary, "wb") as handle:
        if isinstance(chunks, (bytes, bytearray)):
            handle.write(chunks)
        else:
            for chunk in chunks:
                handle.write(chunk)
    os.replace(temporary, path)


# ------------------------------------------------------------------------------- image nodes


@implements("EmptyImage")
def empty_image(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    return (
        Images(inputs["width"], inputs["height"], inputs["batch_size"], media.rgb_of(inputs["color"])),
    ), None


@implements("LoadImage", "LoadImageMask")
def load_image(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    path = ctx.folders.get_annotated_filepath(inputs["image"])
    info = media.probe_image(path)
    images = Images(info.width, info.height, info.frames, info.rgb)
    mask = Mask(info.width, info.height, info.frames)
    if ctx.class_type == "LoadImageMask":
        return (mask,), None
    return (images, mask), None


def _scaled(images: Any, width: int, height: int) -> Images:
    source = images if isinstance(images, Images) else Images(width, height, 1)
    return Images(max(1, width), max(1, height), source.count, source.rgb)


def _aspect_fill(width: int, height: int, source_width: int, source_height: int) -> tuple[int, int]:
    if width == 0 and height == 0:
        return source_width, source_height
    if width == 0:
        width = max(1, round(source_width * height / source_height))
    elif height == 0:
        height = max(1, round(source_height * width / source_width))
    return width, height


@implements("ImageScale")
def image_scale(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    image = inputs["image"]
    width, height = _aspect_fill(inputs["width"], inputs["height"], image.width, image.height)
    return (_scaled(image, width, height),), None


@implements("ImageScaleBy")
def image_scale_by(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    image = inputs["image"]
    factor = inputs["scale_by"]
    return (_scaled(image, round(image.width * factor), round(image.height * factor)),), None


@implements("ImageScaleToMaxDimension")
def image_scale_to_max(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    image = inputs["image"]
    largest = inputs["largest_size"]
    ratio = largest / max(image.width, image.height)
    return (_scaled(image, round(image.width * ratio), round(image.height * ratio)),), None


@implements("ResizeImageMaskNode")
def resize_image_mask(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    source = inputs["input"]
    width, height = getattr(source, "width", 512), getattr(source, "height", 512)
    mode = inputs["resize_type"]

    def sub(name: str, default: Any = 0) -> Any:
        return inputs.get(f"resize_type.{name}", default)

    if mode == "scale dimensions":
        new = _aspect_fill(sub("width"), sub("height"), width, height)
    elif mode == "scale by multiplier":
        new = (round(width * sub("multiplier", 1.0)), round(height * sub("multiplier", 1.0)))
    elif mode in ("scale longer dimension", "scale shorter dimension"):
        key = "longer_size" if mode == "scale longer dimension" else "shorter_size"
        edge = max(width, height) if key == "longer_size" else min(width, height)
        ratio = sub(key, edge) / edge if edge else 1.0
        new = (round(width * ratio), round(height * ratio))
    elif mode == "scale width":
        new = _aspect_fill(sub("width"), 0, width, height)
    elif mode == "scale height":
        new = _aspect_fill(0, sub("height"), width, height)
    elif mode == "scale total pixels":
        ratio = math.sqrt(sub("megapixels", 1.0) * 1024 * 1024 / max(1, width * height))
        new = (round(width * ratio), round(height * ratio))
    elif mode == "match size":
        match = sub("match", None)
        new = (getattr(match, "width", width), getattr(match, "height", height))
    elif mode == "scale to multiple":
        multiple = max(1, sub("multiple", 8))
        new = (max(multiple, width // multiple * multiple), max(multiple, height // multiple * multiple))
    else:
        new = (width, height)
    if isinstance(source, Mask):
        return (Mask(max(1, new[0]), max(1, new[1]), source.count),), None
    return (_scaled(source, new[0], new[1]),), None


@implements("GetImageSize")
def get_image_size(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    image = inputs["image"]
    width, height, count = image.width, image.height, image.count
    ctx.send_text(f"width: {width}, height: {height}\n batch size: {count}")
    return (width, height, count), None


@implements("ImageFromBatch")
def image_from_batch(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    image = inputs["image"]
    start = min(inputs.get("batch_index", 0), max(0, image.count - 1))
    length = min(inputs.get("length", 1), image.count - start)
    return (Images(image.width, image.height, max(1, length), image.rgb),), None


# ------------------------------------------------------------------------------- video nodes


@implements("CreateVideo")
def create_video(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    images = inputs["images"]
    audio = inputs.get("audio")
    return (
        Video(
            images.width,
            images.height,
            images.count,
            float(inputs["fps"]),
            audio if isinstance(audio, Audio) else None,
        ),
    ), None


@implements("LoadVideo")
def load_video(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    path = ctx.folders.get_annotated_filepath(inputs["file"])
    head = path.read_bytes()[:4]
    if head == b"\x1a\x45\xdf\xa3":  # Matroska/WebM: not parsed; typical defaults
        return (Video(512, 512, 25, 25.0, None),), None
    info = media.probe_mp4(path)
    audio = Audio(44100, 2, info.frames / info.fps if info.fps else 0.0) if info.has_audio else None
    return (Video(info.width, info.height, info.frames, info.fps or 25.0, audio),), None


@implements("GetVideoComponents")
def get_video_components(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    video = inputs["video"]
    audio = video.audio or Audio(44100, 2, video.frames / video.fps if video.fps else 0.0)
    return (Images(video.width, video.height, video.frames), audio, float(video.fps)), None


def _video_extension(format_: str) -> str:
    return {"auto": "mp4", "mp4": "mp4", "webm": "webm", "mov": "mov"}.get(format_, "mp4")


@implements("SaveVideo")
def save_video(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    video = inputs["video"]
    folder, filename, counter, subfolder, _ = get_save_image_path(
        inputs["filename_prefix"], ctx.folders.output_dir, video.width, video.height
    )
    name = f"{filename}_{counter:05}_.{_video_extension(inputs.get('format', 'auto'))}"
    data = media.encode_mp4_stand_in(
        video.width, video.height, video.frames, video.fps, video.audio is not None
    )
    _write_atomic(folder / name, data)
    return (video,), {"images": [_saved(name, subfolder, "output")], "animated": [True]}


@implements("SaveWEBM")
def save_webm(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    images = inputs["images"]
    folder, filename, counter, subfolder, _ = get_save_image_path(
        inputs["filename_prefix"], ctx.folders.output_dir, images.width, images.height
    )
    name = f"{filename}_{counter:05}_.webm"
    _write_atomic(
        folder / name, media.encode_webm_stand_in(images.width, images.height, images.count, inputs["fps"])
    )
    return (), {"images": [_saved(name, subfolder, "output")], "animated": [True]}


@implements("SaveAnimatedWEBP", "SaveAnimatedPNG")
def save_animated(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    images = inputs["images"]
    extension = "webp" if ctx.class_type == "SaveAnimatedWEBP" else "png"
    folder, filename, counter, subfolder, _ = get_save_image_path(
        inputs["filename_prefix"], ctx.folders.output_dir, images.width, images.height
    )
    name = f"{filename}_{counter:05}_.{extension}"
    if extension == "webp":
        data = media.encode_webp(images.width, images.height, images.frame_colours(), inputs["fps"])
    else:
        data = media.encode_apng(
            images.width, images.height, images.frame_colours(), inputs["fps"], ctx.metadata()
        )
    _write_atomic(folder / name, data)
    return (images,), {"images": [_saved(name, subfolder, "output")], "animated": [images.count != 1]}


# ComfyUI's PreviewImage alphabet (sic).
_PREVIEW_LETTERS = "abcdefghijklmnopqrstupvxyz"


def _save_pngs(
    ctx: NodeContext, images: Images, prefix: str, directory: Path, type_: str, level: int
) -> list[dict]:
    folder, filename, counter, subfolder, _ = get_save_image_path(
        prefix, directory, images.width, images.height
    )
    results = []
    metadata = ctx.metadata()
    for batch_number, rgb in enumerate(images.frame_colours()):
        name = f"{filename.replace('%batch_num%', str(batch_number))}_{counter:05}_.png"
        _write_atomic(folder / name, media.encode_png(images.width, images.height, rgb, metadata, level))
        results.append(_saved(name, subfolder, type_))
        counter += 1
    return results


@implements("SaveImage")
def save_image(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    images = inputs["images"]
    saved = _save_pngs(
        ctx, images, inputs.get("filename_prefix", "ComfyUI"), ctx.folders.output_dir, "output", 4
    )
    return (images,), {"images": saved}


@implements("PreviewImage")
def preview_image(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    images = inputs["images"]
    suffix = "".join(random.choice(_PREVIEW_LETTERS) for _ in range(5))
    saved = _save_pngs(ctx, images, f"ComfyUI_temp_{suffix}", ctx.folders.temp_dir, "temp", 1)
    return (images,), {"images": saved}


@implements("SaveImageWebsocket")
def save_image_websocket(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    images = inputs["images"]
    for step, rgb in enumerate(images.frame_colours()):
        ctx.progress(step, images.count, media.encode_png(images.width, images.height, rgb, None, 1))
    return (), None


def _save_audio(ctx: NodeContext, audio: Audio, prefix: str, directory: Path, type_: str) -> dict[str, Any]:
    folder, filename, counter, subfolder, _ = get_save_image_path(prefix, directory)
    name = f"{filename.replace('%batch_num%', '0')}_{counter:05}_.flac"
    _write_atomic(
        folder / name,
        media.encode_flac_stand_in(audio.sample_rate, audio.channels, audio.seconds, ctx.metadata()),
    )
    return {"audio": [_saved(name, subfolder, type_)]}


@implements("SaveAudio")
def save_audio(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    audio = inputs["audio"]
    return (audio,), _save_audio(
        ctx, audio, inputs.get("filename_prefix", "audio/ComfyUI"), ctx.folders.output_dir, "output"
    )


@implements("PreviewAudio")
def preview_audio(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    suffix = "".join(random.choice(_PREVIEW_LETTERS) for _ in range(5))
    return (), _save_audio(ctx, inputs["audio"], f"ComfyUI_temp_{suffix}", ctx.folders.temp_dir, "temp")


@implements("LoadAudio")
def load_audio(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    info = media.probe_audio(ctx.folders.get_annotated_filepath(inputs["audio"]))
    return (Audio(info.sample_rate, info.channels, info.seconds),), None


@implements("PreviewAny")
def preview_any(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    source = inputs.get("source")
    if isinstance(source, str):
        text = source
    elif isinstance(source, (bool, int, float)):
        text = str(source)
    elif source is None:
        text = "None"
    else:
        try:
            text = json.dumps(source)
        except TypeError:
            text = str(source)
    return (text,), {"text": [text]}


@implements(
    "PrimitiveInt", "PrimitiveFloat", "PrimitiveString", "PrimitiveStringMultiline", "PrimitiveBoolean"
)
def primitive(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    return (inputs["value"],), None


# ---------------------------------------------------------------------------------- samplers


def _sigma_count(value: Any, default_steps: int = 20) -> int:
    return int(value_meta(value).get("sigmas", default_steps + 1))


@implements("ManualSigmas")
def manual_sigmas(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    count = len(re.findall(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", str(inputs["sigmas"])))
    return (Placeholder("SIGMAS", {"sigmas": count}),), None


def _sample(ctx: NodeContext, steps: int, latent: Any) -> NodeResult:
    for step in range(1, steps + 1):
        if ctx.step_seconds:
            time.sleep(ctx.step_seconds)
        ctx.progress(step, steps)
    meta = value_meta(latent)
    return (Placeholder("LATENT", meta), Placeholder("LATENT", dict(meta))), None


@implements("KSampler", "KSamplerAdvanced")
def ksampler(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    result = _sample(ctx, int(inputs["steps"]), inputs.get("latent_image"))
    return result[0][:1], None


@implements("SamplerCustom", "SamplerCustomAdvanced")
def sampler_custom(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    steps = max(0, _sigma_count(inputs.get("sigmas")) - 1)
    return _sample(ctx, steps, inputs.get("latent_image"))


# --------------------------------------------------------------------------- double's nodes


def make_exception(exception_type: str, message: str) -> BaseException:
    """An exception whose ``module.QualName`` is ``exception_type`` (builtins when it is one)."""
    module, _, name = exception_type.rpartition(".")
    builtin = getattr(builtins, exception_type, None) if not module else None
    if isinstance(builtin, type) and issubclass(builtin, Exception):
        return builtin(message)
    cls = type(name or "Exception", (Exception,), {})
    cls.__module__ = module or "builtins"
    return cls(message)


@implements("DoubleSleep")
def double_sleep(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    seconds = float(inputs["seconds"])
    ticks = int(inputs.get("ticks", 0))
    if ticks <= 0:
        time.sleep(seconds)
    else:
        for tick in range(1, ticks + 1):
            time.sleep(seconds / ticks)
            ctx.progress(tick, ticks)
    return (inputs.get("value"),), None


@implements("DoubleFail")
def double_fail(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    raise make_exception(inputs["exception_type"], inputs["message"])


@implements("DoubleCrash")
def double_crash(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    ctx.crash(int(inputs["exit_code"]))
    return (None,), None  # not reached


@implements("DoubleHang")
def double_hang(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    ctx.hang()
    return (None,), None  # not reached


@implements("DoubleDropSockets")
def double_drop_sockets(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    ctx.drop_sockets()
    return (inputs.get("value"),), None


@implements("DoubleOutputFile")
def double_output_file(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    extension = str(inputs["extension"]).lstrip(".") or "bin"
    key = inputs.get("key", "images") or "images"
    folder, filename, counter, subfolder, _ = get_save_image_path(
        inputs["filename_prefix"], ctx.folders.output_dir
    )
    name = f"{filename}_{counter:05}_.{extension}"
    path = folder / name
    seed = f"{ctx.prompt_id}:{ctx.node_id}:{name}"
    _write_atomic(path, media.deterministic_bytes(int(inputs["size_bytes"]), seed, extension))
    item: dict[str, Any] = _saved(name, subfolder, "output")
    ui: dict[str, Any] = {key: [item]}
    if key == "gifs":
        item["format"] = media_format(extension)
        item["frame_rate"] = 8.0
        item["workflow"] = f"{filename}_{counter:05}.png"
        item["fullpath"] = str(path)
    elif key == "images" and extension.lower() in VIDEO_EXTENSIONS:
        ui["animated"] = [True]
    return (), ui


def media_format(extension: str) -> str:
    return {"mp4": "video/h264-mp4", "webm": "video/webm", "gif": "image/gif"}.get(
        extension.lower(), "video/" + extension
    )


@implements("DoubleValue")
def double_value(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    seed = inputs.get("seed", 0)
    return (seed,), {"text": [str(seed)]}


# ------------------------------------------------------------------------------- generic run

_DEFAULTS = {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}


def _own_hints(inputs: Mapping[str, Any]) -> dict[str, Any]:
    hints: dict[str, Any] = {}
    for name, value in inputs.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        short = name.rsplit(".", 1)[-1]
        if short in ("width", "height"):
            hints[short] = int(value)
        elif short in ("length", "frames", "num_frames", "frames_number"):
            hints["frames"] = int(value)
        elif short == "batch_size":
            hints.setdefault("batch", int(value))
        elif short in ("fps", "frame_rate"):
            hints["fps"] = float(value)
        elif short == "steps":
            hints["sigmas"] = int(value) + 1
    if "frames" not in hints and "batch" in hints:
        hints["frames"] = hints["batch"]
    hints.pop("batch", None)
    return hints


def run_generic(ctx: NodeContext, inputs: dict[str, Any], output_types: list[str]) -> NodeResult:
    """Placeholders of the declared output types, sized from the inputs' hints."""
    linked = [
        value
        for name, value in inputs.items()
        if name not in ("prompt", "extra_pnginfo", "unique_id")
        and not isinstance(value, (str, int, float, bool, type(None)))
    ]
    first_linked = linked[0] if linked else None
    own = _own_hints(inputs)
    upscales = "Upsampler" in ctx.class_type or "LatentUpscale" in ctx.class_type

    def hints_for(output_type: str) -> dict[str, Any]:
        # Inputs of the output's own type lead (a video latent keeps its frames even when a
        # guide image is linked too); the node's own size widgets override them.
        meta: dict[str, Any] = {}
        for value in sorted(linked, key=lambda value: value_type(value) != output_type):
            for key, hint in value_meta(value).items():
                meta.setdefault(key, hint)
        meta.update(own)
        if upscales:
            for key in ("width", "height"):
                if key in meta:
                    meta[key] *= 2
        return meta

    outputs: list[Any] = []
    for output_type in output_types:
        meta = hints_for(output_type)
        if output_type in _DEFAULTS:
            outputs.append(_DEFAULTS[output_type])
        elif output_type == "IMAGE":
            outputs.append(Images(meta.get("width", 512), meta.get("height", 512), meta.get("frames", 1)))
        elif output_type == "MASK":
            outputs.append(Mask(meta.get("width", 512), meta.get("height", 512), meta.get("frames", 1)))
        elif output_type == "VIDEO":
            outputs.append(
                Video(
                    meta.get("width", 512),
                    meta.get("height", 512),
                    meta.get("frames", 1),
                    meta.get("fps", 24.0),
                )
            )
        elif output_type == "AUDIO":
            seconds = meta.get("seconds") or (
                meta["frames"] / meta["fps"] if meta.get("fps") and meta.get("frames") else 1.0
            )
            outputs.append(Audio(44100, 2, float(seconds)))
        elif output_type == "*" or output_type.startswith("COMFY_"):
            outputs.append(first_linked)
        else:
            outputs.append(Placeholder(output_type, dict(meta)))
    return tuple(outputs), None


def run_node(ctx: NodeContext, inputs: dict[str, Any], output_types: list[str]) -> NodeResult:
    """Run one node: its implementation if the double has one, else the generic run."""
    implementation = IMPLEMENTATIONS.get(ctx.class_type)
    if implementation is None:
        return run_generic(ctx, inputs, output_types)
    return implementation(ctx, inputs)


def hang_forever() -> None:
    threading.Event().wait()


__all__ = [
    "IMPLEMENTATIONS",
    "NEVER_CACHED",
    "Audio",
    "Images",
    "InterruptProcessingException",
    "Mask",
    "NodeContext",
    "Placeholder",
    "Video",
    "is_link",
    "run_node",
]
