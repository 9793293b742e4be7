"""``python -m tests.doubles.hf --spec SPEC --root DIR [--port N] [--cdn-port M]``.

Serves the spec until interrupted. Once listening it prints one JSON line to stdout,
``{"endpoint": ..., "cdn_url": ..., "pid": ...}``, and writes the same to ``--ready-file``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from tests.doubles.hf.content import load_spec
from tests.doubles.hf.server import HfDouble, ready_payload


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.doubles.hf", description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, required=True, help="repos and files to serve (JSON or YAML)")
    parser.add_argument("--root", type=Path, required=True, help="where generated files are kept")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="hub port (0: any free port)")
    parser.add_argument("--cdn-port", type=int, default=0, help="CDN port for LFS files (0: any free port)")
    parser.add_argument("--ready-file", type=Path, help="also write the ready line to this file")
    args = parser.parse_args(argv)

    double = HfDouble(load_spec(args.spec), args.root, host=args.host, port=args.port, cdn_port=args.cdn_port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with double:
        line = json.dumps(ready_payload(double))
        if args.ready_file:
            tmp = args.ready_file.with_suffix(".tmp")
            tmp.write_text(line + "\n")
            tmp.replace(args.ready_file)
        print(line, flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
