"""Finding every output file, telling video from image, and deciding inline vs bucket."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from handler.comfy.errors import JobFailure
from handler.job import outputs as out
from handler.job.runner import job_folder_key, result_size, scope_output_prefixes
from handler.job.schema import InputError

HISTORY_OUTPUTS = {
    "75": {
        "images": [{"filename": "LTX-2_00001_.mp4", "subfolder": "video", "type": "output"}],
        "animated": [True],
    },
    "9": {
        "images": [
            {"filename": "a_00001_.png", "subfolder": "", "type": "output"},
            {"filename": "a_00002_.png", "subfolder": "", "type": "output"},
        ]
    },
    "10": {"images": [{"filename": "ComfyUI_temp_abcde_00001_.png", "subfolder": "", "type": "temp"}]},
    "11": {
        "gifs": [{"filename": "vhs_00001.mp4", "subfolder": "", "type": "output", "format": "video/h264-mp4"}]
    },
    "12": {"audio": [{"filename": "b_00001_.flac", "subfolder": "audio", "type": "output"}]},
    "13": {"text": ["12.0"]},
    "14": {
        "images": [{"filename": "anim_00001_.webp", "subfolder": "", "type": "output"}],
        "animated": [True],
    },
    "15": {"images": [{"filename": "clip.mp4", "subfolder": "", "type": "input"}]},
}


def test_every_file_under_any_key_is_found_temp_skipped():
    refs = out.collect_output_refs(HISTORY_OUTPUTS)
    assert [(r.node_id, r.key, r.filename) for r in refs] == [
        ("75", "images", "LTX-2_00001_.mp4"),
        ("9", "images", "a_00001_.png"),
        ("9", "images", "a_00002_.png"),
        ("11", "gifs", "vhs_00001.mp4"),
        ("12", "audio", "b_00001_.flac"),
        ("14", "images", "anim_00001_.webp"),
    ]
    with_temp = out.collect_output_refs(HISTORY_OUTPUTS, include_temp=True)
    assert any(r.type == "temp" for r in with_temp)
    assert not any(r.type == "input" for r in with_temp)


def test_classification_by_extension():
    assert out.classify("x.mp4") == ("video", "video/mp4")
    assert out.classify("x.webm") == ("video", "video/webm")
    assert out.classify("x.png") == ("image", "image/png")
    assert out.classify("x.webp", animated=True) == ("video", "image/webp")
    assert out.classify("x.webp") == ("image", "image/webp")
    assert out.classify("x.flac") == ("audio", "audio/flac")
    assert out.classify("x.safetensors")[0] == "file"


def test_output_paths_stay_inside_their_folder(tmp_path):
    roots = {"output": tmp_path / "output", "temp": tmp_path / "temp"}
    (tmp_path / "output" / "video").mkdir(parents=True)
    (tmp_path / "output" / "video" / "v.mp4").write_bytes(b"1234")
    ref = out.OutputRef("1", "images", "v.mp4", "video", "output", animated=True)
    [found] = out.stat_outputs([ref], roots)
    assert (found.size, found.kind, found.mime) == (4, "video", "video/mp4")
    evil = out.OutputRef("1", "images", "passwd", "../../etc", "output")
    with pytest.raises(JobFailure, match="outside its output folder"):
        out.stat_outputs([evil], roots)
    gone = out.OutputRef("2", "images", "missing.png", "", "output")
    with pytest.raises(JobFailure, match=r"missing.png \(node 2\) but the file is not in its output folder"):
        out.stat_outputs([gone], roots)


def test_read_inline_matches_plain_base64_and_hashes_in_one_pass(tmp_path):
    payload = bytes(range(256)) * 40000 + b"tail"  # not a multiple of the chunk size
    path = tmp_path / "f.bin"
    path.write_bytes(payload)
    text, digest = out.read_inline(path)
    assert text == base64.b64encode(payload).decode()
    assert digest == hashlib.sha256(payload).hexdigest()
    assert type(text) is str


def test_output_list_formats_short_and_serialises_in_full():
    items = out.OutputList([{"filename": "v.mp4", "data": "A" * 100_000}])
    assert f"{ {'outputs': items} }" == "{'outputs': <1 outputs: v.mp4>}"  # what the SDK's f-strings see
    assert json.loads(json.dumps({"outputs": items}))["outputs"][0]["data"] == "A" * 100_000


def test_inline_size_estimate_bounds_the_real_json(tmp_path):
    files = []
    for index, size in enumerate([0, 1, 2, 3, 1000, 300001]):
        path = tmp_path / f"f{index}.png"
        path.write_bytes(b"x" * size)
        files.append(
            out.OutputFile(
                out.OutputRef("1", "images", path.name, "", "output"), path, size, "image", "image/png"
            )
        )
    items = []
    for f in files:
        text, digest = out.read_inline(f.path)
        items.append({**out.describe(f, digest), "data": text})
    real = len(json.dumps({"status": "success", "outputs": items}))
    assert real <= out.inline_size(files) + 100


@pytest.mark.parametrize(
    ("mode", "size", "bucket", "expected"),
    [
        ("auto", 1000, False, "inline"),
        ("auto", 9_000_000, True, "url"),
        ("url", 10, True, "url"),
        ("inline", 1000, True, "inline"),
    ],
)
def test_delivery_choice(mode, size, bucket, expected):
    assert (
        out.choose_delivery(mode, inline_bytes=size, limit=8_000_000, bucket_available=bucket, file_count=1)
        == expected
    )


@pytest.mark.parametrize(
    ("mode", "size", "bucket", "message"),
    [
        ("auto", 9_000_000, False, "no bucket is configured"),
        ("inline", 9_000_000, True, "over INLINE_MAX_BYTES"),
        ("url", 10, False, "no bucket is configured"),
    ],
)
def test_delivery_never_returns_what_runpod_would_drop(mode, size, bucket, message):
    with pytest.raises(JobFailure, match=message):
        out.choose_delivery(mode, inline_bytes=size, limit=8_000_000, bucket_available=bucket, file_count=1)


def test_no_files_means_nothing_to_deliver():
    assert out.choose_delivery("url", inline_bytes=0, limit=1, bucket_available=False, file_count=0) == "none"


def test_output_prefixes_are_scoped_to_the_job_folder():
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "video/LTX-2"}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": ["4", 0]}},
        "5": {"class_type": "NotOutput", "inputs": {"filename_prefix": "x"}},
    }
    info = {"SaveImage": {"output_node": True}, "EmptyImage": {}, "NotOutput": {"output_node": False}}
    assert scope_output_prefixes(prompt, info, "jobs/abc") == ["2"]
    assert prompt["2"]["inputs"]["filename_prefix"] == "jobs/abc/video/LTX-2"
    assert prompt["3"]["inputs"]["filename_prefix"] == ["4", 0]
    assert prompt["5"]["inputs"]["filename_prefix"] == "x"


def test_prefixes_that_leave_the_output_folder_are_refused():
    prompt = {"2": {"class_type": "SaveImage", "inputs": {"filename_prefix": "../../etc/x"}}}
    with pytest.raises(
        InputError, match=r"node 2 \(SaveImage\): filename_prefix '../../etc/x' leaves the output folder"
    ):
        scope_output_prefixes(prompt, {"SaveImage": {"output_node": True}}, "jobs/abc")


def test_result_size_is_the_exact_json_length_without_serialising_payloads():
    result = {
        "status": "success",
        "outputs": out.OutputList(
            [{"filename": "a.mp4", "data": "QUJD" * 1000}, {"filename": "b.png", "url": "https://x"}]
        ),
        "models": {"model_set": "fp8", "files": [{"path": "/opt/ü"}]},
        "timings": {"total_ms": 1.5},
    }
    assert result_size(result) == len(json.dumps(result))


def test_job_folder_key_is_safe_and_unique():
    a, b = job_folder_key("test-1/../x"), job_folder_key("test-1/../x")
    assert a != b
    assert "/" not in a and ".." not in a
