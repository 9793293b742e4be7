"""A local Hugging Face Hub double for tests, image builds and benchmarks.

In this process::

    from tests.doubles.hf import HfDouble, Fault
    with HfDouble(spec, tmp_path / "hub") as hub:
        hub.endpoint        # set as HF_ENDPOINT
        hub.add_fault("acme/model", "w.safetensors", Fault("cut", at=1000))
        hub.body_requests() # what was downloaded

In another process (a Docker build stage on the host network reaches it on 127.0.0.1)::

    from tests.doubles.hf import start_subprocess
    with start_subprocess(spec, tmp_path / "hub") as hub:
        hub.endpoint, hub.requests()

or from a shell: ``python -m tests.doubles.hf --spec spec.yaml --root DIR --port 8765``.
The spec format is described in `tests.doubles.hf.content`.
"""

from tests.doubles.hf.content import Blob, generated_bytes, git_blob_oid, load_spec
from tests.doubles.hf.launcher import RemoteHfDouble, start_subprocess
from tests.doubles.hf.server import Fault, HfDouble, LoggedRequest

__all__ = [
    "Blob",
    "Fault",
    "HfDouble",
    "LoggedRequest",
    "RemoteHfDouble",
    "generated_bytes",
    "git_blob_oid",
    "load_spec",
    "start_subprocess",
]
