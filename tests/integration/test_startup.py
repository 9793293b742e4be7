"""Starting ComfyUI under supervision, and the worker's startup, with the double as ComfyUI."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import pytest

from handler.comfy.supervisor import ComfyProcess, ComfyStartupError
from handler.settings import Settings
from tests.integration.harness import DOUBLE_DIR, free_port, make_worker, zero_time_workflow


def settings_for(tmp_path, *args: str, timeout: float = 20) -> Settings:
    return Settings.from_env(
        {
            "COMFYUI_PATH": str(DOUBLE_DIR),
            "COMFYUI_PYTHON": sys.executable,
            "COMFYUI_PORT": str(free_port()),
            "COMFYUI_DATA_DIR": str(tmp_path / "comfy"),
            "COMFYUI_ARGS": " ".join(args),
            "COMFYUI_STARTUP_TIMEOUT": str(timeout),
        }
    )


def test_readiness_is_polled_until_comfyui_answers(tmp_path):
    comfy = ComfyProcess(settings_for(tmp_path, "--double-startup-delay", "0.8"))
    comfy.start()
    try:
        waited = comfy.wait_ready()
        assert 0.7 < waited < 5
        assert comfy.healthy()
        assert any("To see the GUI go to" in line for line in comfy.log_tail(50))
    finally:
        comfy.stop()
    assert not comfy.alive


def test_a_comfyui_that_exits_at_startup_fails_at_once_with_its_log(tmp_path):
    comfy = ComfyProcess(settings_for(tmp_path, "--double-exit-at-startup", "3", timeout=60))
    comfy.start()
    started = time.monotonic()
    with pytest.raises(ComfyStartupError) as caught:
        comfy.wait_ready()
    assert time.monotonic() - started < 10  # not the 60 s deadline
    message = str(caught.value)
    assert message.startswith("ComfyUI exited with code 3 before it was ready. Last output:")
    assert "  | " in message


def test_a_comfyui_that_never_answers_hits_the_deadline(tmp_path):
    comfy = ComfyProcess(settings_for(tmp_path, "--double-startup-delay", "30", timeout=1))
    comfy.start()
    try:
        with pytest.raises(
            ComfyStartupError,
            match=r"did not answer on http://127\.0\.0\.1:\d+ within 1 s \(COMFYUI_STARTUP_TIMEOUT\)",
        ):
            comfy.wait_ready()
    finally:
        comfy.stop()


async def test_exit_future_fires_when_comfyui_dies(tmp_path):
    comfy = ComfyProcess(settings_for(tmp_path))
    comfy.start()
    comfy.wait_ready()
    died = comfy.exit_future()
    comfy.stop(grace=5)
    assert await asyncio.wait_for(died, 5) != 0
    assert comfy.restart() < 10 and comfy.alive
    comfy.stop()


def test_a_missing_comfyui_is_a_clear_startup_error(tmp_path):
    settings = Settings.from_env(
        {"COMFYUI_PATH": str(tmp_path), "COMFYUI_PYTHON": str(tmp_path / "no-python")}
    )
    with pytest.raises(ComfyStartupError, match="could not start ComfyUI"):
        ComfyProcess(settings).start()


@pytest.mark.slow
def test_the_worker_exits_nonzero_when_comfyui_cannot_start(tmp_path):
    worker = make_worker(tmp_path, COMFYUI_ARGS="--double-exit-at-startup 7")
    worker.start(wait=False)
    assert worker.process.wait(timeout=60) == 1
    assert "ComfyUI exited with code 7 before it was ready" in worker.log_text()


@pytest.mark.slow
def test_warm_up_runs_before_the_first_job_and_logs_as_json(tmp_path):
    warmup = tmp_path / "warmup.json"
    warmup.write_text(json.dumps({"input": {"workflow": zero_time_workflow(123, prefix="warm")}}))
    worker = make_worker(tmp_path, WARMUP=f"@{warmup}", LOG_FORMAT="json")
    worker.start()
    try:
        lines = [
            json.loads(line)
            for line in worker.log_text().splitlines()
            if line.startswith("{") and '"logger"' in line
        ]
        warm = [line for line in lines if line["requestId"] == "warmup"]
        assert any(line["message"].startswith("job done in") for line in warm)
        assert any(line["message"].startswith("warm-up done in") for line in lines)
        assert worker.leftover_files() == []
        assert worker.runsync({"workflow": zero_time_workflow(124)})["status"] == "COMPLETED"
    finally:
        worker.stop()


def test_the_fitness_check_fails_when_comfyui_does_not_answer(tmp_path):
    from handler.worker import Worker

    settings = settings_for(tmp_path)
    worker = Worker(settings)
    with pytest.raises(RuntimeError, match="ComfyUI is not answering"):
        worker.fitness_check()  # before ComfyUI was started
    worker.comfy = ComfyProcess(settings)
    worker.comfy.start()
    try:
        worker.comfy.wait_ready()
        worker.fitness_check()  # healthy: no exception
        worker.comfy.stop()
        with pytest.raises(RuntimeError, match="ComfyUI is not answering"):
            worker.fitness_check()
    finally:
        worker.comfy.stop()


@pytest.mark.slow
def test_a_job_during_a_comfyui_restart_waits_for_it(tmp_path):
    # ComfyUI takes 3 s to answer after every start, so the job after a crash arrives mid-restart.
    worker = make_worker(tmp_path, COMFYUI_ARGS="--double-startup-delay 3", COMFYUI_STARTUP_TIMEOUT="60")
    worker.start()
    try:
        crash = {
            "1": {"class_type": "DoubleCrash", "inputs": {"exit_code": 139, "seed": 1}},
            "2": {"class_type": "DoubleValue", "inputs": {"value": ["1", 0]}},
        }
        assert worker.runsync({"workflow": crash})["status"] == "FAILED"
        answer = worker.runsync({"workflow": zero_time_workflow(77)}, timeout=90)
        assert answer["status"] == "COMPLETED", answer
        assert "ComfyUI is restarting; the job waits for it" in worker.log_text()
    finally:
        worker.stop()
