"""The worker in platform mode: the RunPod SDK polls a stand-in of RunPod's job API on loopback.

This is the path a deployed worker takes: job-take, progress updates and results posted to
job-done, cancellation through the job-stop channel, and bucket uploads (moto's S3 server) for
results too large to return inline, configured per worker (BUCKET_*) or per request (s3Config).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import urllib.request

import boto3
import pytest
import pytest_asyncio
from moto.server import ThreadedMotoServer

from tests.doubles.runpod_api import RunPodJobAPI
from tests.integration.harness import make_worker, zero_time_workflow

# One worker and one stand-in for the module, on one event loop, as a deployed worker lives.
pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]
_colors = itertools.count(9000)
S3_KEYS = {"id": "AKIATESTKEY0001", "secret": "moto-secret-that-must-not-leak"}


@pytest.fixture(scope="module")
def s3():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_KEYS["id"],
        aws_secret_access_key=S3_KEYS["secret"],
        region_name="us-east-1",
    )
    for bucket in ("worker-outputs", "request-outputs"):
        client.create_bucket(Bucket=bucket)
    yield endpoint, client
    server.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(tmp_path_factory, s3):
    endpoint, _client = s3
    tmp_path = tmp_path_factory.mktemp("platform")
    api = await RunPodJobAPI().start()
    worker = make_worker(
        tmp_path,
        api=False,
        **api.environment(),
        PROGRESS_INTERVAL="0",
        INLINE_MAX_BYTES="100000",
        BUCKET_ENDPOINT_URL=endpoint,
        BUCKET_ACCESS_KEY_ID=S3_KEYS["id"],
        BUCKET_SECRET_ACCESS_KEY=S3_KEYS["secret"],
        BUCKET_NAME="worker-outputs",
    )
    worker.start(wait=False)
    yield api, worker
    # The stand-in shares this event loop: keep it answering while the worker shuts down.
    await asyncio.to_thread(worker.stop)
    await api.close()
    assert S3_KEYS["secret"] not in worker.log_text()


def sleepy_workflow(seconds: float, ticks: int) -> dict:
    return {
        "1": {
            "class_type": "DoubleSleep",
            "inputs": {"seconds": seconds, "ticks": ticks, "seed": next(_colors)},
        },
        "2": {
            "class_type": "EmptyImage",
            "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": next(_colors)},
        },
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "slow"}},
        "4": {"class_type": "DoubleValue", "inputs": {"value": ["1", 0]}},
    }


def download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


async def test_progress_updates_and_the_result_reach_runpod(platform):
    api, worker = platform
    api.submit("job-progress", {"workflow": sleepy_workflow(0.6, 6)})
    result = await api.wait_result("job-progress", timeout=60)
    output = result["output"]
    assert output["status"] == "success", result
    assert "error" not in result
    updates = api.progress("job-progress")
    assert updates, "no progress update was posted"
    steps = [u for u in updates if u.get("class_type") == "DoubleSleep" and "step" in u]
    assert steps and all(u["steps"] == 6 for u in steps)
    assert all(0 <= u["percent"] < 100 for u in updates)
    assert worker.leftover_files() == []


async def test_a_large_result_goes_to_the_workers_bucket(platform, s3):
    api, worker = platform
    workflow = {
        "1": {
            "class_type": "DoubleOutputFile",
            "inputs": {
                "size_bytes": 300_000,
                "extension": "mp4",
                "filename_prefix": "video/big",
                "seed": next(_colors),
            },
        }
    }
    api.submit("job-bucket", {"workflow": workflow})
    output = (await api.wait_result("job-bucket", timeout=60))["output"]
    [item] = output["outputs"]
    assert output["delivery"] == "url" and "data" not in item
    assert item["url"].startswith(s3[0] + "/worker-outputs/job-bucket/video/big_00001_.mp4?")
    body = download(item["url"])
    assert (len(body), hashlib.sha256(body).hexdigest()) == (item["size"], item["sha256"])
    assert worker.leftover_files() == []


async def test_s3config_in_the_request_wins(platform, s3):
    api, _worker = platform
    s3_config = {
        "endpointUrl": s3[0],
        "accessId": S3_KEYS["id"],
        "accessSecret": S3_KEYS["secret"],
        "bucketName": "request-outputs",
    }
    api.submit(
        "job-s3config",
        {"workflow": zero_time_workflow(next(_colors)), "output": {"delivery": "url"}},
        s3Config=s3_config,
    )
    output = (await api.wait_result("job-s3config", timeout=60))["output"]
    url = output["outputs"][0]["url"]
    assert "/request-outputs/job-s3config/smoke_00001_.png?" in url
    assert download(url)[:8] == b"\x89PNG\r\n\x1a\n"


async def test_a_cancelled_job_interrupts_comfyui_and_the_next_job_runs(platform):
    api, worker = platform
    api.submit("job-cancel", {"workflow": sleepy_workflow(60, 600)})
    while not api.progress("job-cancel"):
        await asyncio.sleep(0.05)
    api.cancel("job-cancel")
    api.submit("job-after-cancel", {"workflow": zero_time_workflow(next(_colors))})
    result = await api.wait_result("job-after-cancel", timeout=30)  # far less than the 60 s sleep
    assert result["output"]["status"] == "success"
    assert api.results("job-cancel") == []  # RunPod posts nothing for a cancelled job
    assert "job cancelled by RunPod" in worker.log_text()
    assert worker.leftover_files() == []


async def test_a_crash_asks_runpod_to_replace_the_worker(platform):
    api, _worker = platform
    workflow = {
        "1": {"class_type": "DoubleCrash", "inputs": {"exit_code": 134, "seed": next(_colors)}},
        "2": {"class_type": "DoubleValue", "inputs": {"value": ["1", 0]}},
    }
    api.submit("job-crash", {"workflow": workflow})
    result = await api.wait_result("job-crash", timeout=60)
    assert result["error"].startswith("ComfyUI exited with code 134")
    assert result.get("stopPod") is True
    assert result["output"]["comfyui_log"], "the result carries ComfyUI's last log lines"


async def test_a_non_object_input_is_refused_with_a_clear_error(platform):
    api, _worker = platform
    api.submit("job-text-input", "please make a video")
    result = await api.wait_result("job-text-input", timeout=60)
    assert result["error"] == "invalid input: input: expected an object, got str"
    assert result["output"]["details"] == [{"message": "input: expected an object, got str"}]
