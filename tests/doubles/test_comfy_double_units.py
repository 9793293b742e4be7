"""The double's pure parts: YAML subset, folder semantics, media files, jobs view, node order."""

from __future__ import annotations

import io
import json
import os
import struct
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.doubles.comfyui.comfy_double import jobs, media
from tests.doubles.comfyui.comfy_double.executor import execution_order
from tests.doubles.comfyui.comfy_double.folders import (
    ExtraModelPathsError,
    FolderPaths,
    SavePathError,
    get_save_image_path,
    next_counter,
)
from tests.doubles.comfyui.comfy_double.schema import double_object_info
from tests.doubles.comfyui.comfy_double.yamlish import YamlSubsetError, parse_yaml_subset
from tests.doubles.conftest import CAPTURES_0_26, LTX2_API_DIR

# ------------------------------------------------------------------------------------ YAML


def test_yaml_subset_reads_extra_model_paths_shapes() -> None:
    text = """
# comment
comfyui:
    base_path: /workspace/ComfyUI   # trailing comment
    is_default: true
    checkpoints: models/checkpoints/
    text_encoders: |
        models/text_encoders/
        models/clip/
    loras: "models/loras"
other:
  base_path: 'with space'
  vae: >-
    a
    b
empty:
"""
    assert parse_yaml_subset(text) == {
        "comfyui": {
            "base_path": "/workspace/ComfyUI",
            "is_default": True,
            "checkpoints": "models/checkpoints/",
            "text_encoders": "models/text_encoders/\nmodels/clip/\n",
            "loras": "models/loras",
        },
        "other": {"base_path": "with space", "vae": "a b"},
        "empty": None,
    }
    assert parse_yaml_subset("# only a comment\n") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a:\n  - x\n", "line 2: sequences are not supported"),
        ("a: [1, 2]\n", "line 1: unsupported YAML construct"),
        ("a:\n   b: 1\n  c: 2\n", "line 3: bad indentation"),
        ("a: 'open\n", "line 1: unterminated single-quoted string"),
    ],
)
def test_yaml_subset_refuses_what_it_cannot_read(text: str, message: str) -> None:
    with pytest.raises(YamlSubsetError, match=message):
        parse_yaml_subset(text)


# --------------------------------------------------------------------------------- folders


def test_extra_model_paths_follow_comfyui_semantics(tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    (volume / "models" / "checkpoints").mkdir(parents=True)
    (volume / "models" / "checkpoints" / "ltx.safetensors").write_bytes(b"x")
    (volume / "models" / "checkpoints" / "notes.txt").write_text("ignored: wrong extension")
    (volume / "models" / "clip").mkdir(parents=True)
    (volume / "models" / "clip" / "gemma.safetensors").write_bytes(b"x")
    farm = tmp_path / "farm" / "loras"
    farm.mkdir(parents=True)
    (farm / "lora.safetensors").symlink_to(volume / "models" / "checkpoints" / "ltx.safetensors")
    (farm / "nested").symlink_to(volume / "models" / "clip", target_is_directory=True)
    config = tmp_path / "conf" / "extra_model_paths.yaml"
    config.parent.mkdir()
    config.write_text(
        f"""
runpod:
    base_path: {volume}
    checkpoints: models/checkpoints
    clip: |
        models/clip
        models/missing
relative:
    is_default: true
    loras: ../farm/loras
"""
    )
    folders = FolderPaths.create(tmp_path / "base")
    folders.load_extra_path_config(config)
    assert folders.get_filename_list("checkpoints") == ["ltx.safetensors"]
    assert folders.get_filename_list("text_encoders") == ["gemma.safetensors"]
    assert folders.folders["text_encoders"][-2:] == [
        volume / "models" / "clip",
        volume / "models" / "missing",
    ]
    assert folders.get_filename_list("loras") == ["lora.safetensors", "nested/gemma.safetensors"]
    assert folders.folders["loras"][0] == tmp_path / "farm" / "loras", "is_default puts the path first"
    assert folders.get_full_path("loras", "nested/gemma.safetensors") == farm / "nested" / "gemma.safetensors"
    assert f"Adding extra search path checkpoints {volume / 'models' / 'checkpoints'}" in folders.log


def test_bad_extra_model_paths_are_refused_with_the_file_named(tmp_path: Path) -> None:
    config = tmp_path / "extra.yaml"
    config.write_text("comfyui:\n  checkpoints: 3\n")
    folders = FolderPaths.create(tmp_path)
    with pytest.raises(ExtraModelPathsError, match=r"extra.yaml: comfyui.checkpoints must be a path"):
        folders.load_extra_path_config(config)
    with pytest.raises(ExtraModelPathsError, match="cannot read"):
        folders.load_extra_path_config(tmp_path / "nope.yaml")


def test_directories_follow_the_flags(tmp_path: Path) -> None:
    folders = FolderPaths.create(tmp_path / "base", output_dir=tmp_path / "out", temp_parent=tmp_path / "t")
    assert folders.output_dir == tmp_path / "out"
    assert folders.temp_dir == tmp_path / "t" / "temp"
    assert folders.input_dir == tmp_path / "base" / "input"
    assert folders.folders["checkpoints"] == [
        tmp_path / "base" / "models" / "checkpoints",
        tmp_path / "out" / "checkpoints",
    ]
    assert folders.annotated_filepath("x.png [temp]") == ("x.png", tmp_path / "t" / "temp")
    assert (
        folders.get_annotated_filepath("jobs/abc/x.png")
        == tmp_path / "base" / "input" / "jobs" / "abc" / "x.png"
    )


def test_save_paths_count_like_comfyui(tmp_path: Path) -> None:
    folder, filename, counter, subfolder, _ = get_save_image_path("bridge/a_empty", tmp_path, 64, 48)
    assert (folder, filename, counter, subfolder) == (tmp_path / "bridge", "a_empty", 1, "bridge")
    for name in ("a_empty_00001_.png", "a_empty_00007_.png", "a_empty_extra_00099_.png", "other_00050_.png"):
        (folder / name).write_bytes(b"")
    assert get_save_image_path("bridge/a_empty", tmp_path)[2] == 8
    assert get_save_image_path("size_%width%x%height%", tmp_path, 64, 48)[1] == "size_64x48"
    assert next_counter(["x_00003_.png", "x_garbage_.png"], "x") == 4
    with pytest.raises(SavePathError, match="outside the output folder"):
        get_save_image_path("../escape", tmp_path)


# ----------------------------------------------------------------------------------- media


def test_png_writer_makes_real_images_with_comfyui_text_chunks() -> None:
    data = media.encode_png(5, 3, (255, 0, 0), {"prompt": {"1": {}}, "job": "runpod-1"})
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (5, 3)
        assert image.getpixel((4, 2)) == (255, 0, 0)
        assert json.loads(image.info["prompt"]) == {"1": {}} and image.info["job"] == "runpod-1"


def test_animated_writers_make_real_animations() -> None:
    frames = [(10, 20, 30), (40, 50, 60), (70, 80, 90)]
    with Image.open(io.BytesIO(media.encode_webp(8, 6, frames, 8.0))) as webp:
        assert (webp.size, webp.n_frames, webp.is_animated) == ((8, 6), 3, True)
        webp.seek(2)
        assert webp.convert("RGB").getpixel((0, 0)) == (70, 80, 90)
    with Image.open(io.BytesIO(media.encode_webp(8, 6, frames[:1], 8.0))) as still:
        assert (still.size, getattr(still, "is_animated", False)) == ((8, 6), False)
        assert still.convert("RGB").getpixel((7, 5)) == (10, 20, 30)
    with Image.open(io.BytesIO(media.encode_apng(4, 4, frames, 8.0))) as apng:
        assert (apng.n_frames, apng.is_animated) == (3, True)


def test_mp4_stand_in_is_valid_iso_bmff_and_grows_with_the_video(tmp_path: Path) -> None:
    small = media.encode_mp4_stand_in(64, 64, 9, 8.0)
    big = media.encode_mp4_stand_in(640, 360, 97, 24.0)
    assert small[4:12] == b"ftypisom" and len(big) > 50 * len(small)
    path = tmp_path / "v.mp4"
    path.write_bytes(big)
    assert media.probe_mp4(path) == media.VideoInfo(640, 360, 97, 24.0, False)
    kinds = [kind for kind, _, _ in media._iter_boxes(big, 0, len(big))]
    assert kinds == [b"ftyp", b"moov", b"mdat"]
    path.write_bytes(b"not a video at all")
    with pytest.raises(media.InvalidDataError, match="Invalid data found when processing input"):
        media.probe_mp4(path)


def test_image_probe_and_pil_style_error(tmp_path: Path) -> None:
    jpeg = io.BytesIO()
    Image.new("RGB", (33, 17)).save(jpeg, format="JPEG")
    for name, data, size in (
        ("a.png", media.encode_png(12, 7, (0, 0, 0)), (12, 7)),
        ("a.jpg", jpeg.getvalue(), (33, 17)),
        ("a.webp", media.encode_webp(9, 4, [(1, 2, 3)], 1.0), (9, 4)),
    ):
        path = tmp_path / name
        path.write_bytes(data)
        info = media.probe_image(path)
        assert (info.width, info.height) == size
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG garbage!!")
    with pytest.raises(media.UnidentifiedImageError, match=f"cannot identify image file '{corrupt}'"):
        media.probe_image(corrupt)
    assert media.UnidentifiedImageError.__module__ == "PIL"


def test_flac_stand_in_and_wav_probe(tmp_path: Path) -> None:
    flac = media.encode_flac_stand_in(48000, 2, 1.5, {"prompt": {"1": {}}})
    path = tmp_path / "a.flac"
    path.write_bytes(flac)
    assert flac[:4] == b"fLaC" and media.probe_audio(path) == media.AudioInfo(48000, 2, 1.5)
    wav = tmp_path / "a.wav"
    samples = bytes(4 * 11025)  # 0.5 s of 16-bit stereo at 22.05 kHz
    fmt = struct.pack("<HHIIHH", 1, 2, 22050, 22050 * 4, 4, 16)
    wav.write_bytes(
        b"RIFF"
        + struct.pack("<I", 36 + len(samples))
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", len(samples))
        + samples
    )
    assert media.probe_audio(wav) == media.AudioInfo(22050, 2, 0.5)


def test_deterministic_bytes_have_exact_size_and_depend_on_the_seed() -> None:
    one = b"".join(media.deterministic_bytes(3_000_001, "seed", "mp4"))
    assert len(one) == 3_000_001 and one[4:8] == b"ftyp"
    assert one == b"".join(media.deterministic_bytes(3_000_001, "seed", "mp4"))
    assert one != b"".join(media.deterministic_bytes(3_000_001, "other", "mp4"))
    assert b"".join(media.deterministic_bytes(0, "s", "bin")) == b""


# ------------------------------------------------------------------------------------ jobs


def _history_entry(capture: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return next(iter(capture["history"].items()))


def test_jobs_view_matches_the_recorded_jobs_answers() -> None:
    for name in ("a_video_emptyimage_createvideo_savevideo_webp.json", "c_interrupt_global.json"):
        capture = json.loads((CAPTURES_0_26 / name).read_text())
        prompt_id, entry = _history_entry(capture)
        assert jobs.history_job(prompt_id, entry, include_outputs=True) == capture["api_jobs_entry"]
    failed = json.loads((CAPTURES_0_26 / "GET_api_jobs_id_failed_ltx2_t2v.json").read_text())
    entry = {
        "prompt": [
            failed["priority"],
            failed["id"],
            failed["workflow"]["prompt"],
            failed["workflow"]["extra_data"],
            ["75"],
        ],
        "outputs": failed["outputs"],
        "status": failed["execution_status"],
    }
    assert jobs.history_job(failed["id"], entry, include_outputs=True) == failed


def test_jobs_listing_sorts_pages_and_filters() -> None:
    history = {}
    for index, status in enumerate(["success", "error", "success"]):
        messages = [
            ["execution_start", {"timestamp": 10 * index}],
            [
                "execution_success" if status == "success" else "execution_interrupted",
                {"timestamp": 10 * index + index},
            ],
        ]
        history[f"h{index}"] = {
            "prompt": [index, f"h{index}", {}, {"create_time": 100 + index}, []],
            "outputs": {},
            "status": {"status_str": status, "completed": status == "success", "messages": messages},
        }
    running = [[5, "r", {}, {"create_time": 200}, []]]
    pending = [[6, "p", {}, {"create_time": 300}, []]]
    listing = jobs.list_jobs(running, pending, history, limit=2)
    assert [job["id"] for job in listing["jobs"]] == ["p", "r"]
    assert listing["pagination"] == {"offset": 0, "limit": 2, "total": 5, "has_more": True}
    cancelled = jobs.list_jobs(running, pending, history, statuses=["cancelled"])
    assert [job["id"] for job in cancelled["jobs"]] == ["h1"]
    by_duration = jobs.list_jobs([], [], history, sort_by="execution_duration", sort_order="asc")
    assert [job["id"] for job in by_duration["jobs"]] == ["h0", "h1", "h2"]
    with pytest.raises(jobs.JobQueryError, match="Invalid status value"):
        jobs.parse_jobs_query({"status": "done"})
    with pytest.raises(jobs.JobQueryError, match="limit must be a positive integer"):
        jobs.parse_jobs_query({"limit": "0"})


def test_cancel_handles_a_pending_job_that_just_started() -> None:
    calls: list[str] = []

    def interrupt(job_id: str) -> bool:
        calls.append("interrupt")
        return True

    def dequeue(job_id: str) -> bool:
        calls.append("dequeue")
        return False

    assert jobs.cancel_job("p", [], [[0, "p", {}, {}, []]], {}, interrupt, dequeue) == jobs.CANCEL_RUNNING
    assert calls == ["dequeue", "interrupt"]
    assert jobs.cancel_job("h", [], [], {"h": {}}, interrupt, dequeue) == jobs.CANCEL_TERMINAL
    assert jobs.cancel_job("x", [], [], {}, interrupt, dequeue) == jobs.CANCEL_UNKNOWN


# ------------------------------------------------------------------------------ node order


def test_node_order_is_comfyuis() -> None:
    object_info = double_object_info()
    capture = json.loads((CAPTURES_0_26 / "a_video_emptyimage_createvideo_savevideo_webp.json").read_text())
    executing = [
        m["msg"]["data"]["node"]
        for m in capture["ws_messages"]
        if m.get("msg", {}).get("type") == "executing"
    ]
    assert (
        execution_order(capture["request"]["prompt"], ["4", "3"], object_info)
        == executing[:-1]
        == ["1", "4", "2", "3"]
    )

    # 0.3.64 b3 (outputs in the recorded order): loaders, outputs as soon as they are ready.
    b3 = {
        "1": {"class_type": "LoadAudio", "inputs": {"audio": "t.wav"}},
        "2": {"class_type": "SaveAudio", "inputs": {"audio": ["1", 0], "filename_prefix": "a"}},
        "3": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 8, "color": 0}},
        "4": {"class_type": "CreateVideo", "inputs": {"images": ["3", 0], "fps": 8.0, "audio": ["1", 0]}},
        "5": {
            "class_type": "SaveVideo",
            "inputs": {"video": ["4", 0], "filename_prefix": "v", "format": "auto", "codec": "auto"},
        },
        "6": {"class_type": "LoadVideo", "inputs": {"file": "c.mp4"}},
        "7": {
            "class_type": "SaveVideo",
            "inputs": {"video": ["6", 0], "filename_prefix": "v", "format": "mp4", "codec": "h264"},
        },
        "8": {"class_type": "GetVideoComponents", "inputs": {"video": ["6", 0]}},
        "9": {"class_type": "PreviewAny", "inputs": {"source": ["8", 2]}},
    }
    assert execution_order(b3, ["9", "5", "7", "2"], object_info) == [
        "6",
        "7",
        "8",
        "9",
        "1",
        "2",
        "3",
        "4",
        "5",
    ]

    # The recorded LTX-2 t2v run had 92:102 cached and began with the audio VAE loader.
    t2v = json.loads((LTX2_API_DIR / "video_ltx2_t2v.api.json").read_text())
    assert execution_order(t2v, ["75"], object_info, frozenset({"92:102"}))[0] == "92:48"
    assert len(execution_order(t2v, ["75"], object_info)) == len(t2v)


def test_the_recorded_data_is_present() -> None:
    # The replays above would silently test nothing if the copies went missing.
    assert len(list(LTX2_API_DIR.glob("*.api.json"))) == 7
    assert os.path.getsize(CAPTURES_0_26 / "a_video_emptyimage_createvideo_savevideo_webp.json") > 10_000
