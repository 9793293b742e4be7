"""Start the ComfyUI double exactly like ComfyUI: ``python main.py --listen 127.0.0.1 --port 8188``.

Works from any working directory: the ``comfy_double`` package next to this file is imported
from here. Needs only the standard library and aiohttp (requirements.txt).
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from comfy_double.cli import main  # noqa: E402

if __name__ == "__main__":
    code = main(sys.argv[1:], script_dir=HERE)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
