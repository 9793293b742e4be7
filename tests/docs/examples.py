"""Request examples in the documentation, found and made runnable (pure, no I/O but reading docs).

Every ```json block in README.md and docs/*.md is parsed (a block may hold several JSON values one
after another), and so is every body a shell block sends with ``curl -d '...'``; each object with
an ``"input"`` key is a request example. The line just before a block may say what the example is
expected to do:

- nothing: the job must complete (``status: COMPLETED``);
- ``<!-- example: fails "text" -->``: the job must fail with an error containing ``text``;
- ``<!-- example: skip reason -->``: the example is not run, for the reason given.

Examples are written for readers, so they use ``https://example.com/...`` media URLs and elide long
values with ``...``. :func:`make_runnable` turns such an example into a request the test can send,
changing only what a reader would have to fill in themselves, and refuses anything else:

- media URLs on the reserved example domains (RFC 2606) point at the test's local media server,
  same path (the file type follows the path's extension);
- a truncated base64 value or data URI in a media position (``images[].image``, a template's
  media parameters) becomes a complete stand-in of the same type;
- an elided workflow (``{"...": "..."}``) becomes the smallest workflow that uses the example's
  uploads (LoadImage -> SaveImage for each, or EmptyImage -> SaveImage without uploads).

Any other ``...`` left in a request is an error naming where it is: such an example cannot run
and must be completed or marked ``skip`` with a reason.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

ELLIPSES = ("...", "\u2026")
# RFC 2606 / RFC 6761: names reserved for documentation; nothing real is ever served there.
EXAMPLE_DOMAINS = ("example.com", "example.org", "example.net")
_FENCE_OPEN = re.compile(r"^\s*```(?P<lang>json|sh|bash|shell|console)\s*$")
SHELL_LANGUAGES = frozenset({"sh", "bash", "shell", "console"})
# curl's request body in single quotes: -d '...', --data '...', --data-raw '...'
_CURL_DATA = re.compile(r"(?:^|\s)(?:-d|--data|--data-raw|--data-binary)\s+'(?P<body>[^']*)'")
_FENCE_CLOSE = re.compile(r"^\s*```\s*$")
_MARKER = re.compile(r"^\s*<!--\s*example:\s*(?P<kind>fails|skip)\b\s*(?P<arg>.*?)\s*-->\s*$")
# Top-level request keys the worker never sees: RunPod's platform handles them.
PLATFORM_KEYS = frozenset({"webhook", "policy"})


class ExampleError(ValueError):
    """A documentation example is malformed or cannot be made runnable; the message says where."""


@dataclass(frozen=True)
class Expectation:
    outcome: Literal["completed", "fails", "skip"]
    detail: str = ""  # the error text expected (fails) or the reason (skip)


@dataclass(frozen=True)
class DocExample:
    """One request example: where it is, the request body as written, what it should do."""

    source: str  # path relative to the repository root
    line: int  # 1-based line where the JSON object starts
    body: dict[str, Any]
    expect: Expectation

    @property
    def id(self) -> str:
        return f"{self.source}:{self.line}"


@dataclass(frozen=True)
class JsonBlock:
    source: str
    line: int  # line of the opening fence
    language: str
    text: str
    marker: str | None  # the marker comment's line, if the block has one


def json_blocks(text: str, source: str) -> list[JsonBlock]:
    """Every fenced json or shell block of a Markdown text, with the marker line before it (if any)."""
    blocks: list[JsonBlock] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE_OPEN.match(lines[index])
        if not opening:
            index += 1
            continue
        start = index
        index += 1
        body: list[str] = []
        while index < len(lines) and not _FENCE_CLOSE.match(lines[index]):
            body.append(lines[index])
            index += 1
        if index == len(lines):
            raise ExampleError(f"{source}:{start + 1}: ```{opening.group('lang')} block is never closed")
        previous = _previous_nonblank(lines, start)
        marker = previous if previous is not None and _MARKER.match(previous) else None
        blocks.append(JsonBlock(source, start + 1, opening.group("lang"), "\n".join(body), marker))
        index += 1
    return blocks


def _previous_nonblank(lines: list[str], index: int) -> str | None:
    for candidate in reversed(lines[:index]):
        if candidate.strip():
            return candidate
    return None


def parse_marker(marker: str | None, where: str) -> Expectation:
    """The expectation a marker comment states (no marker: the job completes)."""
    if marker is None:
        return Expectation("completed")
    match = _MARKER.match(marker)
    assert match is not None
    kind, argument = match.group("kind"), match.group("arg")
    if kind == "fails":
        quoted = re.fullmatch(r'"(?P<text>[^"]+)"', argument)
        if not quoted:
            raise ExampleError(
                f'{where}: write the expected error as <!-- example: fails "text" -->, got {marker.strip()!r}'
            )
        return Expectation("fails", quoted.group("text"))
    if not argument:
        raise ExampleError(f"{where}: <!-- example: skip --> needs a reason")
    return Expectation("skip", argument)


def json_values(block: JsonBlock) -> Iterator[tuple[int, Any]]:
    """(line, value) for each JSON value in a block: one after another in a json block, the
    ``curl -d '...'`` bodies in a shell block."""
    if block.language in SHELL_LANGUAGES:
        yield from _curl_bodies(block)
        return
    decoder = json.JSONDecoder()
    text = block.text
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return
        line = block.line + 1 + text.count("\n", 0, position)
        try:
            value, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            at = block.line + 1 + text.count("\n", 0, exc.pos)
            raise ExampleError(
                f"{block.source}:{at}: the ```json block is not valid JSON: {exc.msg}"
            ) from None
        yield line, value
        position = end


def _curl_bodies(block: JsonBlock) -> Iterator[tuple[int, Any]]:
    for match in _CURL_DATA.finditer(block.text):
        line = block.line + 1 + block.text.count("\n", 0, match.start("body"))
        body = match.group("body")
        if not body.lstrip().startswith(("{", "[")):
            continue  # not JSON (form data, @file)
        try:
            yield line, json.loads(body)
        except json.JSONDecodeError as exc:
            raise ExampleError(
                f"{block.source}:{line}: the curl request body is not valid JSON: {exc.msg}"
            ) from None


def examples_in(text: str, source: str) -> list[DocExample]:
    """Every request example (a JSON object with an "input" key) of one Markdown text."""
    found = []
    for block in json_blocks(text, source):
        values = list(json_values(block))
        requests = [(line, v) for line, v in values if isinstance(v, dict) and "input" in v]
        if block.marker is not None and len(requests) != 1:
            raise ExampleError(
                f"{block.source}:{block.line}: a marker applies to a block holding exactly one request, "
                f"this one holds {len(requests)}"
            )
        for line, value in requests:
            where = f"{source}:{line}"
            unknown = sorted(set(value) - {"input"} - PLATFORM_KEYS)
            if unknown:
                raise ExampleError(
                    f"{where}: request keys {', '.join(unknown)} are not part of a request the local API "
                    f"passes to the worker (known: input, {', '.join(sorted(PLATFORM_KEYS))})"
                )
            found.append(DocExample(source, line, value, parse_marker(block.marker, where)))
    return found


def documentation_files(repo: Path) -> list[Path]:
    """README.md and every Markdown file under docs/, in a stable order."""
    return [repo / "README.md", *sorted((repo / "docs").glob("**/*.md"))]


def collect_examples(repo: Path) -> list[DocExample]:
    """Every request example in the project's documentation."""
    found: list[DocExample] = []
    for path in documentation_files(repo):
        found += examples_in(path.read_text(encoding="utf-8"), str(path.relative_to(repo)))
    return found


# --- making an example runnable -----------------------------------------------------------------
@dataclass(frozen=True)
class StandIn:
    """A complete media file standing in for an elided one."""

    mime: str
    data: bytes


@dataclass
class Runnable:
    input: dict[str, Any]
    changes: list[str] = field(default_factory=list)  # what was filled in, for the test's message


def is_elided(value: Any) -> bool:
    return isinstance(value, str) and value.rstrip().endswith(ELLIPSES)


def _strip_ellipsis(value: str) -> str:
    text = value.rstrip()
    for mark in ELLIPSES:
        if text.endswith(mark):
            return text[: -len(mark)]
    return text


_BASE64_PREFIXES = {
    "iVBORw0KGgo": "image/png",
    "/9j/": "image/jpeg",
    "UklGR": "image/webp",
    "GkXf": "video/webm",
}


def sniff_elided_mime(value: str) -> str | None:
    """The media type an elided base64 value or data URI starts as, or None if it cannot be told."""
    text = _strip_ellipsis(value).strip()
    if text.lower().startswith("data:"):
        declared = text[5:].split(";", 1)[0].split(",", 1)[0].lower()
        return declared or None
    for prefix, mime in _BASE64_PREFIXES.items():
        if text.startswith(prefix):
            return mime
    # ISO-BMFF (mp4/mov): a 4-byte box size, then "ftyp"
    try:
        head = base64.b64decode(text[: len(text) // 4 * 4])
    except ValueError:
        return None
    if head[4:8] == b"ftyp":
        return "video/mp4"
    return None


def example_host(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return any(host == domain or host.endswith("." + domain) for domain in EXAMPLE_DOMAINS)


def media_positions(
    job_input: Mapping[str, Any], template_media: Callable[[str], list[Any]]
) -> list[tuple[str, Any]]:
    """(where, value) of every media value a job input carries."""
    positions: list[tuple[str, Any]] = []
    for index, upload in enumerate(job_input.get("images") or []):
        if isinstance(upload, Mapping) and "image" in upload:
            positions.append((f"images[{index}].image", upload["image"]))
    template = job_input.get("template")
    if isinstance(template, str):
        for slot in template_media(template):
            if slot.param in job_input:
                positions.append((slot.param, job_input[slot.param]))
    return positions


def _set_media(job_input: dict[str, Any], where: str, value: str) -> None:
    match = re.fullmatch(r"images\[(\d+)\]\.image", where)
    if match:
        job_input["images"][int(match.group(1))]["image"] = value
    else:
        job_input[where] = value


def elided_workflow(uploads: list[Any]) -> dict[str, Any]:
    """The smallest workflow that uses every upload (LoadImage -> SaveImage), or one image without."""
    workflow: dict[str, Any] = {}
    names = [u["name"] for u in uploads if isinstance(u, Mapping) and isinstance(u.get("name"), str)]
    if not names:
        workflow["1"] = {
            "class_type": "EmptyImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0},
        }
        workflow["2"] = {
            "class_type": "SaveImage",
            "inputs": {"images": ["1", 0], "filename_prefix": "example"},
        }
        return workflow
    for index, name in enumerate(names):
        load, save = str(2 * index + 1), str(2 * index + 2)
        workflow[load] = {"class_type": "LoadImage", "inputs": {"image": name}}
        workflow[save] = {
            "class_type": "SaveImage",
            "inputs": {"images": [load, 0], "filename_prefix": f"example{index}"},
        }
    return workflow


def make_runnable(
    example: DocExample,
    *,
    media_base_url: str,
    stand_in: Callable[[str], StandIn],
    template_media: Callable[[str], list[Any]],
) -> Runnable:
    """The example's input with only reader-filled parts completed; raises ExampleError otherwise.

    ``stand_in(mime)`` gives a complete media file of that type; ``template_media(name)`` the
    template's media slots (``handler.templates.template_media_slots``).
    """
    job_input = copy.deepcopy(example.body["input"])
    if not isinstance(job_input, dict):
        raise ExampleError(f"{example.id}: input is not an object")
    runnable = Runnable(job_input)

    workflow = job_input.get("workflow")
    if (
        isinstance(workflow, dict)
        and workflow
        and all(k in ELLIPSES and v in ELLIPSES for k, v in workflow.items())
    ):
        job_input["workflow"] = elided_workflow(job_input.get("images") or [])
        runnable.changes.append("workflow: the elided graph became LoadImage -> SaveImage per upload")

    for where, value in media_positions(job_input, template_media):
        if not isinstance(value, str):
            continue
        if value.lower().startswith(("http://", "https://")):
            if not example_host(value):
                raise ExampleError(
                    f"{example.id}: input.{where} fetches {value!r} from the internet; documentation "
                    f"examples use {', '.join(EXAMPLE_DOMAINS)} so the tests can serve the file"
                )
            parts = urlsplit(value)
            local = (
                media_base_url.rstrip("/") + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            )
            _set_media(job_input, where, local)
            runnable.changes.append(f"input.{where}: {value} served from the test's media server")
        elif is_elided(value):
            mime = sniff_elided_mime(value)
            if mime is None:
                raise ExampleError(
                    f"{example.id}: input.{where} is elided and its media type cannot be told from {value[:24]!r}"
                )
            media = stand_in(mime)
            encoded = base64.b64encode(media.data).decode()
            full = f"data:{media.mime};base64,{encoded}" if value.lower().startswith("data:") else encoded
            _set_media(job_input, where, full)
            runnable.changes.append(f"input.{where}: the elided {mime} became a complete stand-in")

    leftovers = list(_ellipsis_paths(job_input, "input"))
    if leftovers:
        raise ExampleError(
            f"{example.id}: placeholder '...' left at {', '.join(leftovers)}; complete the example or "
            "mark it <!-- example: skip reason -->"
        )
    return runnable


def _ellipsis_paths(value: Any, where: str) -> Iterator[str]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if str(key).strip() in ELLIPSES:
                yield f"{where} (key {key!r})"
            yield from _ellipsis_paths(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _ellipsis_paths(item, f"{where}[{index}]")
    elif isinstance(value, str) and value.strip() in ELLIPSES:
        yield where
