"""A small YAML reader for ``extra_model_paths.yaml`` (the double may not depend on PyYAML).

It reads the subset those files use: nested block mappings, plain and quoted scalars, comments,
``|``/``>`` block scalars (with ``-``/``+`` chomping) and multi-line plain scalars. Flow
collections, sequences, anchors and tags are refused with the line number, so a config the double
cannot read fails loudly instead of being half-applied.
"""

from __future__ import annotations

import re
from typing import Any

_KEY_RE = re.compile(
    r"""^(?P<key>"(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^#'"\s][^:#]*?|[^#'"\s])\s*:(?:\s+|$)(?P<rest>.*)$"""
)


class YamlSubsetError(ValueError):
    """The text uses YAML the double's reader does not support, or is not valid YAML."""


def _strip_comment(text: str) -> str:
    """Remove a trailing ``# comment`` that is outside quotes."""
    quote = None
    for index, char in enumerate(text):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or text[index - 1] in " \t"):
            return text[:index].rstrip()
    return text.rstrip()


def _scalar(text: str, line_no: int) -> Any:
    text = text.strip()
    if not text or text in ("~", "null", "Null", "NULL"):
        return None
    if text[0] in "[{&*!":
        raise YamlSubsetError(f"line {line_no}: unsupported YAML construct {text!r}")
    if text[0] == '"':
        if not text.endswith('"') or len(text) < 2:
            raise YamlSubsetError(f"line {line_no}: unterminated double-quoted string")
        body = text[1:-1]
        return bytes(body, "utf-8").decode("unicode_escape") if "\\" in body else body
    if text[0] == "'":
        if not text.endswith("'") or len(text) < 2:
            raise YamlSubsetError(f"line {line_no}: unterminated single-quoted string")
        return text[1:-1].replace("''", "'")
    lowered = text.lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    if re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    return text


def parse_yaml_subset(text: str) -> Any:
    """Parse ``text`` into dicts and scalars.

    Returns None for an empty document (as ``yaml.safe_load`` does).

    Raises:
        YamlSubsetError: unsupported or malformed content, naming the line.
    """
    lines = text.splitlines()
    # [indent of the keys, mapping] entries; the root's key indent is set by its first key.
    root: dict[str, Any] = {}
    stack: list[list[Any]] = [[None, root]]
    pending: tuple[int, dict[str, Any], str] | None = None  # key awaiting a nested mapping
    last_scalar: tuple[int, dict[str, Any], str] | None = None  # for plain multi-line scalars
    index = 0
    while index < len(lines):
        raw = lines[index]
        line_no = index + 1
        index += 1
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise YamlSubsetError(f"line {line_no}: tabs are not allowed for indentation")
        content = _strip_comment(raw)
        if not content.strip() or content.strip() in ("---", "..."):
            continue
        indent = len(content) - len(content.lstrip(" "))
        body = content.strip()

        if body.startswith("- ") or body == "-":
            raise YamlSubsetError(f"line {line_no}: sequences are not supported here: {body!r}")

        match = _KEY_RE.match(body)
        if match is None:
            if last_scalar is not None and indent > last_scalar[0]:
                _, owner, key = last_scalar
                owner[key] = f"{owner[key]} {body}" if owner[key] is not None else body
                continue
            raise YamlSubsetError(f"line {line_no}: expected 'key: value', got {body!r}")

        if pending is not None and indent > pending[0]:
            nested: dict[str, Any] = {}
            pending[1][pending[2]] = nested
            stack.append([indent, nested])
        pending = None
        while len(stack) > 1 and indent < stack[-1][0]:
            stack.pop()
        if stack[-1][0] is None:
            stack[-1][0] = indent
        if indent != stack[-1][0]:
            raise YamlSubsetError(f"line {line_no}: bad indentation")
        parent = stack[-1][1]

        key = _scalar(match.group("key"), line_no)
        key = str(key) if key is not None else "null"
        rest = match.group("rest").strip()
        last_scalar = None
        if not rest:
            parent[key] = None
            pending = (indent, parent, key)
            continue
        if rest[0] in "|>":
            header = rest
            if not re.fullmatch(r"[|>][+-]?", header):
                raise YamlSubsetError(f"line {line_no}: unsupported block scalar header {header!r}")
            block: list[str] = []
            block_indent: int | None = None
            while index < len(lines):
                candidate = lines[index]
                if candidate.strip() == "":
                    block.append("")
                    index += 1
                    continue
                candidate_indent = len(candidate) - len(candidate.lstrip(" "))
                if candidate_indent <= indent:
                    break
                if block_indent is None:
                    block_indent = candidate_indent
                if candidate_indent < block_indent:
                    break
                block.append(candidate[block_indent:])
                index += 1
            parent[key] = _block_value(block, folded=header[0] == ">", chomp=header[1:])
            continue
        parent[key] = _scalar(rest, line_no)
        last_scalar = (indent, parent, key)
    return root or None


def _block_value(block: list[str], folded: bool, chomp: str) -> str:
    while block and block[-1] == "" and chomp != "+":
        block.pop()
    if folded:
        text = ""
        for line in block:
            if not line:
                text += "\n"
            elif text and not text.endswith("\n"):
                text += " " + line
            else:
                text += line
    else:
        text = "\n".join(block)
    if chomp == "-":
        return text
    return text + "\n" if block else ""
