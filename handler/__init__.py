"""ComfyUI + LTX-2 on RunPod Serverless: the worker package.

One command line, ``python -m handler <subcommand>``: ``serve`` (the worker an image runs),
``lock``/``fetch``/``verify`` (the model manifest), ``locate`` (where the models are) and
``render`` (a template plus parameters to the API-format prompt it would queue).
"""

__version__ = "0.1.0"
