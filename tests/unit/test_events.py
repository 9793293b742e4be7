"""PromptTracker against message sequences recorded from real ComfyUI servers."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from handler.comfy.events import (
    PromptTracker,
    decode_binary_frame,
    decode_text_frame,
    terminal_from_history,
    terminal_from_job,
)

CAPTURES = Path(__file__).resolve().parents[1] / "fixtures" / "comfyui"


def recorded(name: str) -> dict:
    return json.loads((CAPTURES / name).read_text())


def feed_all(tracker: PromptTracker, frames: list[dict]) -> None:
    for frame in frames:
        if frame.get("kind") == "text":
            tracker.feed(frame["msg"])


def test_recorded_video_run_finishes_with_both_outputs():
    capture = recorded("a_video_emptyimage_createvideo_savevideo_webp.json")
    prompt_id = capture["response"]["prompt_id"]
    tracker = PromptTracker.for_prompt(prompt_id, capture["request"]["prompt"])
    feed_all(tracker, capture["ws_messages"])
    assert tracker.finished
    assert tracker.terminal["type"] == "execution_success"
    assert set(tracker.outputs) == {"3", "4"}
    assert tracker.outputs["3"]["images"][0]["filename"].endswith(".mp4")
    assert tracker.outputs["3"]["animated"] == [True]
    assert tracker.progress().percent == 100.0


def test_messages_for_other_prompts_are_ignored():
    capture = recorded("a_video_emptyimage_createvideo_savevideo_webp.json")
    tracker = PromptTracker.for_prompt("00000000-0000-4000-8000-000000000000", capture["request"]["prompt"])
    feed_all(tracker, capture["ws_messages"])
    assert not tracker.finished
    assert tracker.outputs == {}


def test_progress_counts_nodes_and_steps():
    tracker = PromptTracker.for_prompt(
        "p", {"1": {"class_type": "A"}, "2": {"class_type": "KSampler"}, "3": {"class_type": "Save"}}
    )
    tracker.feed({"type": "execution_start", "data": {"prompt_id": "p"}})
    tracker.feed({"type": "execution_cached", "data": {"prompt_id": "p", "nodes": ["1"]}})
    tracker.feed({"type": "executing", "data": {"prompt_id": "p", "node": "2"}})
    tracker.feed({"type": "progress", "data": {"prompt_id": "p", "node": "2", "value": 5, "max": 10}})
    progress = tracker.progress()
    assert (progress.node, progress.class_type, progress.step, progress.steps) == ("2", "KSampler", 5, 10)
    assert progress.nodes_done == 1
    assert progress.percent == pytest.approx(50.0)
    assert progress.as_update() == {
        "percent": 50.0,
        "nodes_done": 1,
        "nodes_total": 3,
        "node": "2",
        "class_type": "KSampler",
        "step": 5,
        "steps": 10,
    }
    tracker.feed({"type": "executing", "data": {"prompt_id": "p", "node": "3"}})
    assert tracker.progress().nodes_done == 2
    assert tracker.progress().step is None


def test_executing_without_prompt_id_after_reconnect_is_accepted_only_while_running():
    tracker = PromptTracker.for_prompt("p", {"1": {"class_type": "A"}, "3": {"class_type": "B"}})
    assert tracker.feed({"type": "executing", "data": {"node": "3"}}) is False  # not started yet
    tracker.feed({"type": "execution_start", "data": {"prompt_id": "p"}})
    assert tracker.feed({"type": "executing", "data": {"node": "3"}}) is True
    assert tracker.progress().node == "3"


def test_error_and_interrupt_are_terminal():
    error = {
        "type": "execution_error",
        "data": {"prompt_id": "p", "node_id": "1", "exception_message": "boom\n"},
    }
    tracker = PromptTracker.for_prompt("p", {"1": {"class_type": "A"}})
    tracker.feed(error)
    assert tracker.terminal is error
    interrupted = PromptTracker.for_prompt("q", {})
    interrupted.feed({"type": "execution_interrupted", "data": {"prompt_id": "q", "node_id": "3"}})
    assert interrupted.terminal["type"] == "execution_interrupted"


def test_terminal_from_recorded_history_and_jobs():
    capture = recorded("c_interrupt_global.json")
    entry = next(iter(capture["history"].values()))
    assert terminal_from_history(entry)["type"] == "execution_interrupted"
    success = recorded("a_video_emptyimage_createvideo_savevideo_webp.json")
    assert terminal_from_history(next(iter(success["history"].values())))["type"] == "execution_success"
    assert terminal_from_job(success["api_jobs_entry"])["type"] == "execution_success"
    assert terminal_from_job({"status": "cancelled"})["type"] == "execution_interrupted"
    assert (
        terminal_from_job({"status": "failed", "execution_error": {"node_id": "9"}})["data"]["node_id"] == "9"
    )
    assert terminal_from_job({"status": "in_progress"}) is None
    assert terminal_from_history({"status": {"messages": [["execution_start", {}]]}}) is None


def test_frames_decode():
    assert decode_text_frame('{"type": "status", "data": {"sid": "x"}}')["data"]["sid"] == "x"
    assert decode_text_frame("not json") is None
    assert decode_text_frame('["list"]') is None
    assert decode_text_frame('{"type": "x"}')["data"] == {}
    node = b"92:106"
    text_event = (
        struct.pack(">I", 3)
        + struct.pack(">I", len(node))
        + node
        + b"width: 640, height: 360\n batch size: 17"
    )
    frame = decode_binary_frame(text_event)
    assert (frame.event, frame.name) == (3, "text")
    assert decode_binary_frame(b"\x00").name == "truncated"
