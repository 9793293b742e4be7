"""Small, comment-keeping edits of models.lock.yaml, shared by `lock` and trust-on-first-use.

A changed value gets an end-of-line comment saying where it came from (the old comment, such
as ``# unknown``, would now be wrong); every other line, comment and the order stay as they were.
The new text is validated before anyone writes it (callers write it with
``handler.fsutil.write_atomic``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from handler.models.lock import dump_yaml, load_document, parse_lock


def section_for(document: Any, item_id: str) -> Any:
    """The mapping of entry or licence ``item_id`` inside a round-trip document."""
    for section in ("entries", "licenses"):
        items = document.get(section) or {}
        if item_id in items:
            return items[item_id]
    raise KeyError(f"no entry or licence {item_id!r} in the lock")


def set_field(mapping: Any, key: str, value: Any, comment: str) -> bool:
    """Set ``mapping[key]`` and its end-of-line comment; False when the value was already that."""
    if key in mapping and mapping[key] == value and type(mapping[key]) is type(value):
        return False
    mapping[key] = value
    tokens = mapping.ca.items.get(key)
    if not tokens or len(tokens) < 3 or tokens[2] is None:
        mapping.yaml_add_eol_comment(f"# {comment}", key)
        tokens = mapping.ca.items[key]
    # The token holds the end-of-line comment and whatever blank lines or comment lines follow
    # it: replace the first line only. (The emitter adds one space before a column-0 comment.)
    _, _, following = tokens[2].value.partition("\n")
    tokens[2].value = f" # {comment}\n{following}"
    tokens[2].column = 0
    return True


def apply_updates(text: str, updates: Mapping[str, Mapping[str, Any]], comment: str) -> str:
    """Lock text with ``updates`` (item id -> field -> value) applied; validated, not written."""
    document = load_document(text)
    for item_id, fields in updates.items():
        mapping = section_for(document, item_id)
        for key, value in fields.items():
            set_field(mapping, key, value, comment)
    new_text = dump_yaml(document)
    parse_lock(new_text)  # never write a lock that would not load
    return new_text
