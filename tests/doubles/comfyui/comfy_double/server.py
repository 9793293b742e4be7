"""The double's HTTP and WebSocket server (aiohttp), answering like ComfyUI's ``server.py``.

Every route is served at ``/<path>`` and ``/api/<path>``; ``/api/jobs`` exists on 0.26.0 only.
Messages from the worker thread go through ``send_sync`` into one queue that a single task
publishes, so they reach the sockets in the order they were produced.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import os
import struct
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from . import jobs as jobs_api
from .executor import (
    SENSITIVE_EXTRA_DATA_KEYS,
    InterruptFlag,
    PromptExecutor,
    PromptQueue,
    now_ms,
    prompt_worker,
)
from .folders import FOLDERS_NEW_IN_0_26, FolderPaths
from .schema import double_object_info, guess_mimetype, object_info_with_files
from .validation import VERSION_0_3, VERSION_0_26, is_canonical_uuid, validate_graph

logger = logging.getLogger("comfy_double")

_UNSAFE_CONTENT_TYPES = {
    "text/html",
    "text/html-sandboxed",
    "application/xhtml+xml",
    "text/javascript",
    "text/css",
}


@dataclass(frozen=True)
class VersionProfile:
    """What differs on the wire between the two recorded ComfyUI versions."""

    version: str
    frontend: str
    templates: str
    os_name: str
    features: dict[str, Any]
    jobs_api: bool
    create_time: bool
    keep_cache_across_prompts: bool


PROFILES = {
    VERSION_0_26: VersionProfile(
        version=VERSION_0_26,
        frontend="1.45.19",
        templates="0.10.7",
        os_name="linux",
        features={
            "supports_preview_metadata": True,
            "max_upload_size": 104857600,
            "extension": {"manager": {"supports_v4": True}},
            "node_replacements": True,
            "assets": False,
        },
        jobs_api=True,
        create_time=True,
        keep_cache_across_prompts=True,
    ),
    VERSION_0_3: VersionProfile(
        version=VERSION_0_3,
        frontend="1.27.10",
        templates="0.1.95",
        os_name="posix",
        features={"supports_preview_metadata": True, "max_upload_size": 104857600},
        jobs_api=False,
        create_time=False,
        keep_cache_across_prompts=False,
    ),
}


def _memory() -> tuple[int, int]:
    """(total, available) RAM in bytes, from /proc/meminfo when there is one."""
    try:
        values = {}
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                name, _, rest = line.partition(":")
                values[name] = int(rest.split()[0]) * 1024
        return values["MemTotal"], values.get("MemAvailable", values.get("MemFree", 0))
    except (OSError, KeyError, ValueError, IndexError):
        return 0, 0


class DoubleServer:
    """State shared by the HTTP handlers, the WebSocket handler and the worker thread."""

    def __init__(
        self,
        folders: FolderPaths,
        *,
        version: str = VERSION_0_26,
        max_upload_size: int = 100 * 1024 * 1024,
        disable_metadata: bool = False,
        step_seconds: float = 0.01,
        argv: list[str] | None = None,
    ) -> None:
        self.profile = PROFILES[version]
        self.version = version
        self.folders = folders
        self.max_upload_size = max_upload_size
        self.disable_metadata = disable_metadata
        self.step_seconds = step_seconds
        self.keep_cache_across_prompts = self.profile.keep_cache_across_prompts
        self.argv = argv or sys.argv
        self.base_object_info = double_object_info()
        self.interrupt = InterruptFlag()
        self.client_id: str | None = None
        self.last_node_id: str | None = None
        self.last_prompt_id: str | None = None
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.sockets_metadata: dict[str, dict[str, Any]] = {}
        self.number = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.messages: asyncio.Queue[tuple[Any, Any, str | None]] | None = None
        self.queue = PromptQueue(self)
        self.executor = PromptExecutor(self)
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None

    # ---------------------------------------------------------------- execution host interface

    def send_sync(self, event: str | int, data: Any, sid: str | None = None) -> None:
        """Queue a message from any thread; text messages are serialized now (frozen)."""
        if self.loop is None or self.messages is None:
            return
        payload = data if isinstance(event, int) else json.dumps({"type": event, "data": data})
        self.loop.call_soon_threadsafe(self.messages.put_nowait, (event, payload, sid))

    def get_queue_info(self) -> dict[str, Any]:
        return {"exec_info": {"queue_remaining": self.queue.get_tasks_remaining()}}

    def queue_updated(self) -> None:
        self.send_sync("status", {"status": self.get_queue_info()})

    def supports_preview_metadata(self, sid: str | None) -> bool:
        if sid is None:
            return False
        flags = self.sockets_metadata.get(sid, {}).get("feature_flags", {})
        return bool(flags.get("supports_preview_metadata"))

    def drop_sockets(self) -> None:
        """Close every WebSocket from the server side (blocks the calling worker thread)."""
        if self.loop is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._close_all_sockets(), self.loop)
        future.result(timeout=10)

    def flush_messages(self, timeout: float) -> None:
        """Block (from the worker thread) until every queued message has been sent."""
        if self.loop is None or self.messages is None:
            return
        future = asyncio.run_coroutine_threadsafe(self.messages.join(), self.loop)
        try:
            future.result(timeout=timeout)
        except TimeoutError:
            future.cancel()

    async def _close_all_sockets(self) -> None:
        if self.messages is not None:
            await self.messages.join()  # what was sent before the drop still arrives
        for ws in list(self.sockets.values()):
            await ws.close()
        logger.info("DoubleDropSockets: closed every WebSocket connection")

    def current_object_info(self) -> dict[str, Any]:
        return object_info_with_files(
            self.base_object_info, self.folders.folder_listing(), self.folders.input_files()
        )

    def file_exists(self, class_type: str, input_name: str, value: str) -> bool:
        return self.folders.exists_annotated_filepath(value)

    # ------------------------------------------------------------------------------ lifecycle

    async def start(self, addresses: list[str], port: int) -> web.AppRunner:
        self.loop = asyncio.get_running_loop()
        self.messages = asyncio.Queue()
        self.loop.create_task(self._publish_loop())
        self._worker = threading.Thread(
            target=prompt_worker,
            args=(self.queue, self.executor, self, self._stop),
            name="prompt_worker",
            daemon=True,
        )
        self._worker.start()
        runner = web.AppRunner(self.make_app(), access_log=None)
        await runner.setup()
        for address in addresses:
            await web.TCPSite(runner, address, port).start()
        return runner

    def stop(self) -> None:
        self._stop.set()

    async def _publish_loop(self) -> None:
        assert self.messages is not None
        while True:
            event, payload, sid = await self.messages.get()
            try:
                await self._send(event, payload, sid)
            finally:
                self.messages.task_done()

    async def _send(self, event: str | int, payload: Any, sid: str | None) -> None:
        if sid is None:
            targets = list(self.sockets.values())
        elif sid in self.sockets:
            targets = [self.sockets[sid]]
        else:
            return
        for ws in targets:
            try:
                if isinstance(event, int):
                    await ws.send_bytes(struct.pack(">I", event) + payload)
                else:
                    await ws.send_str(payload)
            except (ConnectionError, RuntimeError) as exc:
                logger.warning("send error: %s", exc)

    # --------------------------------------------------------------------------------- routes

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_upload_size)
        routes: list[tuple[str, str, Callable[..., Any]]] = [
            ("GET", "/ws", self.websocket_handler),
            ("GET", "/", self.get_root),
            ("GET", "/embeddings", self.get_embeddings),
            ("GET", "/models", self.get_model_folders),
            ("GET", "/models/{folder}", self.get_models),
            ("GET", "/extensions", self.get_extensions),
            ("POST", "/upload/image", self.upload_image),
            ("GET", "/view", self.view_image),
            ("GET", "/system_stats", self.system_stats),
            ("GET", "/features", self.get_features),
            ("GET", "/prompt", self.get_prompt),
            ("POST", "/prompt", self.post_prompt),
            ("GET", "/object_info", self.get_object_info),
            ("GET", "/object_info/{node_class}", self.get_object_info_node),
            ("GET", "/history", self.get_history),
            ("GET", "/history/{prompt_id}", self.get_history_item),
            ("POST", "/history", self.post_history),
            ("GET", "/queue", self.get_queue),
            ("POST", "/queue", self.post_queue),
            ("POST", "/interrupt", self.post_interrupt),
            ("POST", "/free", self.post_free),
            ("GET", "/internal/folder_paths", self.get_folder_paths),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, handler)
            app.router.add_route(method, "/api" + path if path != "/" else "/api/", handler)
        if self.profile.jobs_api:
            app.router.add_route("GET", "/api/jobs", self.get_jobs)
            app.router.add_route("POST", "/api/jobs/cancel", self.cancel_jobs)
            app.router.add_route("GET", "/api/jobs/{job_id}", self.get_job)
            app.router.add_route("POST", "/api/jobs/{job_id}/cancel", self.cancel_job)
        return app

    async def get_root(self, request: web.Request) -> web.Response:
        body = (
            "<!doctype html><html><head><title>ComfyUI</title></head>"
            f"<body>ComfyUI {self.version} protocol double (tests only; no frontend).</body></html>"
        )
        return web.Response(text=body, content_type="text/html")

    async def websocket_handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sid = request.rel_url.query.get("clientId", "")
        if sid:
            self.sockets.pop(sid, None)  # reusing a session: the old socket is forgotten
        else:
            sid = uuid.uuid4().hex
        self.sockets[sid] = ws
        self.sockets_metadata[sid] = {"feature_flags": {}}
        try:
            await ws.send_str(
                json.dumps({"type": "status", "data": {"status": self.get_queue_info(), "sid": sid}})
            )
            if self.client_id == sid and self.last_node_id is not None:
                await ws.send_str(json.dumps({"type": "executing", "data": {"node": self.last_node_id}}))
            first_message = True
            async for message in ws:
                if message.type == WSMsgType.ERROR:
                    logger.warning("ws connection closed with exception %s", ws.exception())
                elif message.type == WSMsgType.TEXT:
                    try:
                        data = json.loads(message.data)
                        if first_message and isinstance(data, dict) and data.get("type") == "feature_flags":
                            flags = data.get("data", {})
                            self.sockets_metadata[sid]["feature_flags"] = (
                                flags if isinstance(flags, dict) else {}
                            )
                            await ws.send_str(json.dumps({"type": "feature_flags", "data": self.features()}))
                        first_message = False
                    except json.JSONDecodeError:
                        logger.warning("Invalid JSON received from client %s: %s", sid, message.data)
        finally:
            # As in ComfyUI, this removes whatever socket now has this id.
            self.sockets.pop(sid, None)
            self.sockets_metadata.pop(sid, None)
        return ws

    def features(self) -> dict[str, Any]:
        features = json.loads(json.dumps(self.profile.features))
        features["max_upload_size"] = self.max_upload_size
        return features

    async def get_features(self, request: web.Request) -> web.Response:
        return web.json_response(self.features())

    async def get_embeddings(self, request: web.Request) -> web.Response:
        return web.json_response(
            [os.path.splitext(name)[0] for name in self.folders.get_filename_list("embeddings")]
        )

    async def get_extensions(self, request: web.Request) -> web.Response:
        return web.json_response([])

    def _model_folder_names(self) -> list[str]:
        names = self.folders.folder_names()
        if self.version == VERSION_0_3:
            names = [name for name in names if name not in FOLDERS_NEW_IN_0_26]
        return names

    async def get_model_folders(self, request: web.Request) -> web.Response:
        return web.json_response(self._model_folder_names())

    async def get_models(self, request: web.Request) -> web.Response:
        folder = request.match_info["folder"]
        if folder not in self._model_folder_names():
            return web.Response(status=404)
        return web.json_response(self.folders.get_filename_list(folder))

    async def get_folder_paths(self, request: web.Request) -> web.Response:
        return web.json_response(self.folders.registered_paths())

    async def system_stats(self, request: web.Request) -> web.Response:
        total, free = _memory()
        system: dict[str, Any] = {
            "os": self.profile.os_name,
            "ram_total": total,
            "ram_free": free,
            "comfyui_version": self.version,
            "required_frontend_version": self.profile.frontend,
            "installed_templates_version": self.profile.templates,
            "required_templates_version": self.profile.templates,
        }
        if self.version == VERSION_0_26:
            system["comfy_package_versions"] = [
                {
                    "name": "comfyui-frontend-package",
                    "installed": self.profile.frontend,
                    "required": self.profile.frontend,
                },
                {
                    "name": "comfyui-workflow-templates",
                    "installed": self.profile.templates,
                    "required": self.profile.templates,
                },
            ]
        system.update(
            python_version=sys.version,
            pytorch_version="none (comfy_double)",
            embedded_python=False,
        )
        if self.version == VERSION_0_26:
            system["deploy_environment"] = "local-git"
        system["argv"] = self.argv
        device = {
            "name": "cpu",
            "type": "cpu",
            "index": None,
            "vram_total": total,
            "vram_free": free,
            "torch_vram_total": total,
            "torch_vram_free": free,
        }
        return web.json_response({"system": system, "devices": [device]})

    # ------------------------------------------------------------------------- object info

    async def get_object_info(self, request: web.Request) -> web.Response:
        return web.json_response(self.current_object_info())

    async def get_object_info_node(self, request: web.Request) -> web.Response:
        node_class = request.match_info["node_class"]
        info = self.current_object_info()
        if node_class not in info:
            return web.json_response({})
        return web.json_response({node_class: info[node_class]})

    # ------------------------------------------------------------------------------ prompts

    async def get_prompt(self, request: web.Request) -> web.Response:
        return web.json_response(self.get_queue_info())

    async def post_prompt(self, request: web.Request) -> web.Response:
        logger.info("got prompt")
        json_data = await request.json()  # malformed JSON -> aiohttp's own 500, as in ComfyUI
        if "number" in json_data:
            number: int | float = float(json_data["number"])
        else:
            number = self.number
            if json_data.get("front"):
                number = -number
            self.number += 1

        if "prompt" not in json_data:
            error = {
                "type": "no_prompt",
                "message": "No prompt provided",
                "details": "No prompt provided",
                "extra_info": {},
            }
            return web.json_response({"error": error, "node_errors": {}}, status=400)

        supplied_id = json_data.get("prompt_id")
        validation = validate_graph(
            json_data["prompt"],
            self.current_object_info(),
            prompt_id=supplied_id,
            number=number,
            version=self.version,
            partial_execution_targets=json_data.get("partial_execution_targets"),
            input_file_exists=self.file_exists,
        )
        for line in validation.log:
            logger.error("%s", line)
        if not validation.ok:
            logger.warning("invalid prompt: %s", validation.body["error"])
            return web.json_response(validation.body, status=400)

        extra_data = json_data.get("extra_data", {})
        if not isinstance(extra_data, dict):
            raise TypeError("extra_data must be an object")
        if "client_id" in json_data:
            extra_data["client_id"] = json_data["client_id"]
        sensitive = {key: extra_data.pop(key) for key in SENSITIVE_EXTRA_DATA_KEYS if key in extra_data}
        if self.profile.create_time:
            extra_data["create_time"] = now_ms()
            usage_source = request.headers.get("Comfy-Usage-Source")
            if usage_source:
                extra_data["comfy_usage_source"] = usage_source
        prompt_id = validation.prompt_id
        self.queue.put((number, prompt_id, validation.prompt, extra_data, validation.outputs, sensitive))
        return web.json_response(
            {"prompt_id": prompt_id, "number": number, "node_errors": validation.node_errors}
        )

    async def get_queue(self, request: web.Request) -> web.Response:
        running, pending = self.queue.get_current_queue()
        return web.json_response({"queue_running": running, "queue_pending": pending})

    async def post_queue(self, request: web.Request) -> web.Response:
        json_data = await request.json()
        if json_data.get("clear"):
            self.queue.wipe_queue()
        for prompt_id in json_data.get("delete", []):
            self.queue.delete_queue_item(lambda item, target=prompt_id: item[1] == target)
        return web.Response(status=200)

    async def post_interrupt(self, request: web.Request) -> web.Response:
        try:
            json_data = await request.json()
        except json.JSONDecodeError:
            json_data = {}
        prompt_id = json_data.get("prompt_id") if isinstance(json_data, dict) else None
        if prompt_id:
            if self.queue.is_running(prompt_id):
                logger.info("Interrupting prompt %s", prompt_id)
                self.interrupt.set()
            else:
                logger.info("Prompt %s is not currently running, skipping interrupt", prompt_id)
        else:
            logger.info("Global interrupt (no prompt_id specified)")
            self.interrupt.set()
        return web.Response(status=200)

    async def post_free(self, request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=200)

    # ------------------------------------------------------------------------------ history

    async def get_history(self, request: web.Request) -> web.Response:
        max_items = request.rel_url.query.get("max_items")
        offset = int(request.rel_url.query.get("offset", -1))
        return web.json_response(
            self.queue.get_history(max_items=int(max_items) if max_items is not None else None, offset=offset)
        )

    async def get_history_item(self, request: web.Request) -> web.Response:
        return web.json_response(self.queue.get_history(prompt_id=request.match_info["prompt_id"]))

    async def post_history(self, request: web.Request) -> web.Response:
        json_data = await request.json()
        if json_data.get("clear"):
            self.queue.wipe_history()
        for prompt_id in json_data.get("delete", []):
            self.queue.delete_history_item(prompt_id)
        return web.Response(status=200)

    # ---------------------------------------------------------------------------------- jobs

    def _interrupt_if_running(self, prompt_id: str) -> bool:
        with self.queue.mutex:
            if self.queue.is_running(prompt_id):
                logger.info("Interrupting prompt %s", prompt_id)
                self.interrupt.set()
                return True
        return False

    def _cancel(self, job_id: str) -> bool:
        running, pending = self.queue.get_current_queue()
        outcome = jobs_api.cancel_job(
            job_id,
            running,
            pending,
            self.queue.get_history(),
            self._interrupt_if_running,
            lambda target: self.queue.delete_queue_item(lambda item: item[1] == target),
        )
        return outcome in (jobs_api.CANCEL_RUNNING, jobs_api.CANCEL_PENDING)

    async def get_jobs(self, request: web.Request) -> web.Response:
        try:
            query = jobs_api.parse_jobs_query(request.rel_url.query)
        except jobs_api.JobQueryError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        running, pending = self.queue.get_current_queue()
        return web.json_response(jobs_api.list_jobs(running, pending, self.queue.get_history(), **query))

    async def get_job(self, request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        running, pending = self.queue.get_current_queue()
        job = jobs_api.get_job(job_id, running, pending, self.queue.get_history(prompt_id=job_id))
        if job is None:
            return web.json_response({"error": "Job not found"}, status=404)
        return web.json_response(job)

    async def cancel_job(self, request: web.Request) -> web.Response:
        return web.json_response({"cancelled": self._cancel(request.match_info["job_id"])})

    async def cancel_jobs(self, request: web.Request) -> web.Response:
        try:
            json_data = await request.json()
        except json.JSONDecodeError:
            return web.json_response({"error": "Request body must be valid JSON"}, status=400)
        job_ids = json_data.get("job_ids") if isinstance(json_data, dict) else None
        if not isinstance(job_ids, list):
            return web.json_response({"error": "job_ids must be a list"}, status=400)
        invalid = [
            job_id if isinstance(job_id, str) else repr(job_id)
            for job_id in job_ids
            if not is_canonical_uuid(job_id)
        ]
        if invalid:
            return web.json_response(
                {"error": "job_ids contains invalid id(s)", "invalid_ids": invalid}, status=400
            )
        cancelled = False
        for job_id in job_ids:
            if self._cancel(job_id):
                cancelled = True
        return web.json_response({"cancelled": cancelled})

    # ------------------------------------------------------------------------- files in/out

    async def view_image(self, request: web.Request) -> web.StreamResponse:
        query = request.rel_url.query
        if "filename" not in query:
            return web.Response(status=404)
        filename, output_dir = self.folders.annotated_filepath(query["filename"])
        if not filename:
            return web.Response(status=400)
        if filename[0] == "/" or ".." in filename:
            return web.Response(status=400)
        if output_dir is None:
            output_dir = self.folders.directory_by_type(query.get("type", "output"))
        if output_dir is None:
            return web.Response(status=400)
        directory = str(output_dir)
        if "subfolder" in query:
            full_output_dir = os.path.join(directory, query["subfolder"])
            if os.path.commonpath((os.path.abspath(full_output_dir), directory)) != directory:
                return web.Response(status=403)
            directory = full_output_dir
        filename = os.path.basename(filename)
        path = os.path.join(directory, filename)
        if not os.path.isfile(path):
            return web.Response(status=404)
        converted = _maybe_convert_preview(path, query.get("preview"), query.get("channel"))
        if converted is not None:
            data, content_type = converted
            return web.Response(
                body=data,
                content_type=content_type,
                headers={"Content-Disposition": f'filename="{filename}"'},
            )
        content_type = guess_mimetype(filename) or "application/octet-stream"
        if content_type in _UNSAFE_CONTENT_TYPES:
            content_type = "application/octet-stream"
        return web.FileResponse(
            path, headers={"Content-Disposition": f'filename="{filename}"', "Content-Type": content_type}
        )

    async def upload_image(self, request: web.Request) -> web.Response:
        post = await request.post()
        image = post.get("image")
        overwrite = post.get("overwrite")
        upload_type = post.get("type") or "input"
        directories = {
            "input": self.folders.input_dir,
            "temp": self.folders.temp_dir,
            "output": self.folders.output_dir,
        }
        if upload_type not in directories:
            raise ValueError(f"unknown upload type {upload_type!r}")  # ComfyUI fails with a 500 here too
        upload_dir = str(directories[upload_type])
        if image is None or isinstance(image, str) or not getattr(image, "file", None):
            return web.Response(status=400)
        filename = image.filename
        if not filename:
            return web.Response(status=400)
        subfolder = post.get("subfolder", "")
        if not isinstance(subfolder, str):
            return web.Response(status=400)
        full_output_folder = os.path.join(upload_dir, os.path.normpath(subfolder))
        filepath = os.path.abspath(os.path.join(full_output_folder, filename))
        if os.path.commonpath((upload_dir, filepath)) != upload_dir:
            return web.Response(status=400)
        os.makedirs(full_output_folder, exist_ok=True)
        data = image.file.read()
        stem, extension = os.path.splitext(filename)
        duplicate = False
        if overwrite not in ("true", "1"):
            index = 1
            while os.path.exists(filepath):
                if _same_bytes(filepath, data):
                    duplicate = True
                    break
                filename = f"{stem} ({index}){extension}"
                filepath = os.path.join(full_output_folder, filename)
                index += 1
        if not duplicate:
            temporary = os.path.join(
                full_output_folder, f".{os.path.basename(filepath)}.{uuid.uuid4().hex}.part"
            )
            with open(temporary, "wb") as handle:
                handle.write(data)
            os.replace(temporary, filepath)
        return web.json_response({"name": filename, "subfolder": subfolder, "type": upload_type})


def _same_bytes(path: str, data: bytes) -> bool:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).digest() == hashlib.sha256(data).digest()


def _maybe_convert_preview(path: str, preview: str | None, channel: str | None) -> tuple[bytes, str] | None:
    """``preview=webp;50`` and ``channel=rgb|a`` re-encode with Pillow when it is installed.

    The double's own runtime has no Pillow; then the file is served unchanged.
    """
    if not preview and channel in (None, "rgba"):
        return None
    try:
        from PIL import Image  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        with Image.open(path) as image:
            if preview:
                image_format, _, quality = preview.partition(";")
                image_format = image_format if image_format in ("webp", "jpeg") else "webp"
                buffer = io.BytesIO()
                converted = image.convert("RGB") if image_format == "jpeg" else image
                converted.save(buffer, format=image_format, quality=int(quality or 90))
                return buffer.getvalue(), f"image/{image_format}"
            buffer = io.BytesIO()
            if channel == "rgb":
                image.convert("RGB").save(buffer, format="PNG")
            else:
                rgba = image.convert("RGBA")
                alpha = rgba.getchannel("A")
                Image.merge("RGBA", (alpha, alpha, alpha, alpha)).save(buffer, format="PNG")
            return buffer.getvalue(), "image/png"
    except (OSError, ValueError):
        return None


__all__ = ["PROFILES", "DoubleServer", "VersionProfile"]
