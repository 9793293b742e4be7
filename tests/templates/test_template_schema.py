"""The published JSON Schema: up to date, valid, and agreeing with the validator."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from handler.templates import (
    DOCS_DIR,
    MARKDOWN_DOC,
    SCHEMA_DOC,
    TEMPLATE_NAMES,
    TemplateParamsError,
    markdown_document,
    schema_document,
    template_input_schema,
    validate_template_params,
)

REGENERATE = "uv run python -m handler.templates --write-docs"


def test_published_schema_is_up_to_date() -> None:
    published = (DOCS_DIR / SCHEMA_DOC).read_text(encoding="utf-8")
    assert published == schema_document(), f"docs/{SCHEMA_DOC} is stale: run `{REGENERATE}`"


def test_published_reference_is_up_to_date() -> None:
    published = (DOCS_DIR / MARKDOWN_DOC).read_text(encoding="utf-8")
    assert published == markdown_document(), f"docs/{MARKDOWN_DOC} is stale: run `{REGENERATE}`"


def test_schema_is_valid_draft_2020_12() -> None:
    schema = template_input_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["discriminator"]["propertyName"] == "template"
    assert set(schema["discriminator"]["mapping"]) == set(TEMPLATE_NAMES)


def test_schema_describes_every_parameter_with_limits() -> None:
    defs = template_input_schema()["$defs"]
    t2v = defs["TemplateInput_t2v"]["properties"]
    assert t2v["width"]["multipleOf"] == 64 and t2v["width"]["minimum"] == 128
    assert t2v["frames"]["enum"][:3] == [9, 17, 25] and t2v["frames"]["enum"][-1] == 257
    assert t2v["seed"]["anyOf"][0]["maximum"] == 2**64 - 1
    assert t2v["fps"]["default"] == 24
    assert defs["TemplateInput_i2v"]["properties"]["fps"]["default"] == 25
    assert "image" in defs["TemplateInput_i2v"]["required"]
    assert "image" not in defs["TemplateInput_canny"].get("required", [])
    assert all(d["additionalProperties"] is False for d in defs.values())


def test_schema_file_is_what_the_generator_writes(tmp_path: Path) -> None:
    from handler.templates import write_docs

    written = write_docs(tmp_path)
    assert sorted(p.name for p in written) == sorted([SCHEMA_DOC, MARKDOWN_DOC])
    assert json.loads((tmp_path / SCHEMA_DOC).read_text(encoding="utf-8")) == template_input_schema()
    assert not list(tmp_path.glob("*.tmp"))


# Inputs on both sides of every limit the schema can express. The schema and the validator must
# agree on each (duration's derived-frames limit is the one rule JSON Schema cannot state).
CASES = [
    {"template": "t2v"},
    {"template": "t2v", "prompt": "a cat", "frames": 97, "seed": 3, "cfg": 2.5, "steps": 1},
    {"template": "t2v", "frames": 120},
    {"template": "t2v", "frames": 9},
    {"template": "t2v", "frames": 1},
    {"template": "t2v", "frames": 257},
    {"template": "t2v", "frames": 265},
    {"template": "t2v", "frames": 97.0},
    {"template": "t2v", "frames": "97"},
    {"template": "t2v", "width": 128, "height": 2560},
    {"template": "t2v", "width": 64},
    {"template": "t2v", "width": 1000},
    {"template": "t2v", "width": True},
    {"template": "t2v", "fps": 60},
    {"template": "t2v", "fps": 61},
    {"template": "t2v", "fps": 24.5},
    {"template": "t2v", "seed": None},
    {"template": "t2v", "seed": 2**64 - 1},
    {"template": "t2v", "seed": 2**64},
    {"template": "t2v", "seed": -1},
    {"template": "t2v", "steps": 100},
    {"template": "t2v", "steps": 101},
    {"template": "t2v", "cfg": 0},
    {"template": "t2v", "cfg": 20.01},
    {"template": "t2v", "prompt": ""},
    {"template": "t2v", "prompt": "   "},
    {"template": "t2v", "negative_prompt": ""},
    {"template": "t2v", "duration": 4},
    {"template": "t2v", "duration": 0},
    {"template": "t2v", "duration": 4, "frames": 97},
    {"template": "t2v", "image": "x"},
    {"template": "t2v", "unknown": 1},
    {"template": "i2v"},
    {"template": "i2v", "image": "data:image/png;base64,AAAA"},
    {"template": "i2v", "image": ""},
    {"template": "canny", "video": "v"},
    {"template": "canny", "video": "v", "image": "i"},
    {"template": "canny", "video": "v", "image": None},
    {"template": "canny", "image": "i"},
    {"template": "depth", "video": "v", "frames": 33, "fps": 12},
    {"template": "depth"},
    {"template": "nope"},
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: json.dumps(c)[:60])
def test_schema_and_validator_agree(case: dict) -> None:
    schema_ok = jsonschema.Draft202012Validator(template_input_schema()).is_valid(case)
    params = {k: v for k, v in case.items() if k != "template"}
    try:
        validate_template_params(case["template"], params)
        validator_ok = True
    except TemplateParamsError:
        validator_ok = False
    assert schema_ok == validator_ok
