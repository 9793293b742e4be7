"""One RunPod job through ComfyUI: validate, place media, queue, follow, deliver, clean up.

``JobRunner.run(job)`` is what the async RunPod handler awaits. It never raises for a job's own
problems: those come back as ``{"error": "<one line>", "details": [...]}``. It re-raises only a
cancellation from RunPod, after interrupting ComfyUI and cleaning up.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from handler.comfy.client import DISCONNECTED, RECONNECTED, ComfyClient, ComfyHTTPError, ComfyRejected
from handler.comfy.errors import JobFailure, execution_failure, interrupted_failure, validation_failure
from handler.comfy.events import PromptTracker, terminal_from_history, terminal_from_job
from handler.comfy.supervisor import ComfyProcess, ComfyStartupError
from handler.job import outputs as out
from handler.job.media import MediaLoader, sniff_extension, write_input_file
from handler.job.schema import (
    InputError,
    JobRequest,
    apply_overrides,
    class_problems,
    override_problems,
    parse_job_input,
)
from handler.job.storage import bucket_config, upload_files
from handler.log import Stopwatch, job_context, register_secrets
from handler.models.verify import sha256_file
from handler.settings import Settings

log = logging.getLogger("handler.job")

QUIET_POLL_SECONDS = 10.0  # ask /history this often when the WebSocket is up but silent
DOWN_POLL_SECONDS = 0.5  # and this often while it is reconnecting
JOBS_SUBFOLDER = "jobs"


class _TimedOut(Exception):
    pass


class _ComfyDied(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


@dataclass
class _JobFiles:
    """Everything a job put on disk, removed when it ends."""

    inputs: list[Path] = field(default_factory=list)
    created_dirs: list[Path] = field(default_factory=list)  # input subfolders the job made
    output_dir: Path | None = None
    reported: list[Path] = field(default_factory=list)  # outputs outside output_dir (temp previews...)

    def clean(self) -> None:
        for path in self.inputs + self.reported:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        for folder in reversed(self.created_dirs):  # deepest first; never one another job filled
            with contextlib.suppress(OSError):
                folder.rmdir()
        if self.output_dir is not None:
            shutil.rmtree(self.output_dir, ignore_errors=True)


def job_folder_key(job_id: str) -> str:
    """A folder name for the job's outputs: its id made file-name safe, plus a unique tail."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", job_id)[:64] or "job"
    return f"{safe}-{uuid.uuid4().hex[:8]}"


def scope_output_prefixes(prompt: dict[str, Any], object_info: Mapping[str, Any], folder: str) -> list[str]:
    """Send every output node's files into ``output/<folder>/`` (pure; edits ``prompt``).

    Two reasons: the job's outputs can be found and removed as one folder, and an output node
    whose inputs changed is never answered from ComfyUI's cache with a previous job's (deleted)
    files. Returns the ids of the nodes changed.
    """
    changed, problems = [], []
    for node_id, node in prompt.items():
        schema = object_info.get(str(node.get("class_type")))
        inputs = node.get("inputs") or {}
        prefix = inputs.get("filename_prefix")
        if isinstance(schema, Mapping) and schema.get("output_node") and isinstance(prefix, str):
            if ".." in prefix.replace("\\", "/").split("/"):
                problems.append(
                    f"node {node_id} ({node.get('class_type')}): filename_prefix {prefix!r} leaves the output folder"
                )
                continue
            inputs["filename_prefix"] = f"{folder}/{prefix.lstrip('/')}"
            changed.append(str(node_id))
    if problems:
        raise InputError(problems)
    return changed


def result_size(result: Mapping[str, Any]) -> int:
    """Bytes of ``json.dumps(result)`` without serialising the inline payloads (pure).

    Base64 needs no escaping in JSON, so each payload adds exactly its length.
    """
    outputs = result.get("outputs") or []
    payload = sum(len(item["data"]) for item in outputs if isinstance(item, Mapping) and "data" in item)
    skeleton = dict(result)
    skeleton["outputs"] = [
        {**item, "data": ""} if isinstance(item, Mapping) and "data" in item else item for item in outputs
    ]
    return len(json.dumps(skeleton, default=str)) + payload


class JobRunner:
    def __init__(
        self,
        settings: Settings,
        comfy: ComfyProcess,
        client: ComfyClient,
        *,
        model_report: Any = None,
        lock: Any = None,
        role_filenames: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.comfy = comfy
        self.client = client
        self.model_report = model_report
        self.lock = lock
        self.role_filenames = dict(role_filenames or {})
        # The model report is fixed for the worker's life: build its JSON form once.
        self._models_dict = model_report.to_dict() if model_report is not None else None
        self._models_size = len(json.dumps(self._models_dict)) if self._models_dict is not None else 0
        self.media = MediaLoader(settings)
        # Progress goes to RunPod only on the platform (the SDK posts it to the job-done URL).
        self.on_platform = bool(os.environ.get("RUNPOD_WEBHOOK_POST_OUTPUT"))
        self._locks: dict[int, asyncio.Lock] = {}
        # Restarts run on their own thread, so any event loop (the SDK makes several) can await them.
        self._restarter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="comfyui-restart")
        self._restart: Future[None] | None = None

    # --- entry point --------------------------------------------------------------------------
    async def run(self, job: Mapping[str, Any]) -> dict[str, Any]:
        job_id = str(job.get("id") or f"job-{uuid.uuid4().hex[:12]}")
        lock = self._locks.setdefault(id(asyncio.get_running_loop()), asyncio.Lock())
        async with lock:  # one job at a time per worker, whatever the SDK's concurrency
            with job_context(job_id):
                return await self._run_guarded(job_id, job)

    async def _run_guarded(self, job_id: str, job: Mapping[str, Any]) -> dict[str, Any]:
        watch = Stopwatch()
        files = _JobFiles()
        state: dict[str, Any] = {}
        try:
            result = await self._run(job_id, job, watch, files, state)
        except InputError as exc:
            result = {"error": str(exc), "details": [{"message": p} for p in exc.problems]}
        except JobFailure as failure:
            result = failure.as_result()
        except asyncio.CancelledError:
            log.warning("job cancelled by RunPod; stopping its ComfyUI prompt")
            if state.get("tracker") is not None:
                # Shielded: RunPod cancelled us, but the prompt must stop (and stop writing files)
                # before its folder is cleaned up.
                stopped = False
                with contextlib.suppress(Exception):
                    stopped = await asyncio.shield(self._stop_prompt(state["tracker"], state["queue"]))
                if not stopped:
                    self._restart_in_background(kill=True)  # the next job must not queue behind it
            raise
        except Exception as exc:  # a bug of ours: report it, keep serving
            log.exception("job failed unexpectedly")
            result = {"error": f"internal worker error: {type(exc).__name__}: {exc}"}
        finally:
            if state.get("prompt_id"):
                self.client.unsubscribe(state["prompt_id"])
            files.clean()
        if "error" in result:
            log.warning("job failed: %s", result["error"])
            result["status"] = "error"
        else:
            log.info("job done in %.0f ms", watch.total_ms())
        if state.get("prompt_id"):
            result.setdefault("prompt_id", state["prompt_id"])
        if self._models_dict is not None:
            result["models"] = self._models_dict
        result["timings"] = {**watch.marks, "total_ms": watch.total_ms()}
        if result.get("delivery") == "inline" and result_size(result) > self.settings.inline_max_bytes:
            # The choice of delivery reserved room for the rest of the result; never return more
            # than the limit, whatever took the room (RunPod drops what is over its own).
            size = result_size(result)
            failure = JobFailure(
                f"the result would be {size / 1e6:.1f} MB, over INLINE_MAX_BYTES "
                f"({self.settings.inline_max_bytes / 1e6:.1f} MB); configure a bucket or use output.delivery 'url'"
            )
            result = {**failure.as_result(), "status": "error", "timings": result["timings"]}
        return result

    # --- the job ----------------------------------------------------------------------------------
    async def _run(
        self, job_id: str, job: Mapping[str, Any], watch: Stopwatch, files: _JobFiles, state: dict[str, Any]
    ) -> dict[str, Any]:
        from handler import templates  # the workflow templates; imported late to keep startup light

        s3_config = job.get("s3Config") if isinstance(job.get("s3Config"), Mapping) else None
        if s3_config:
            register_secrets([str(s3_config.get("accessId", "")), str(s3_config.get("accessSecret", ""))])
        request = parse_job_input(
            job.get("input"),
            default_timeout=self.settings.job_timeout,
            max_timeout=self.settings.job_timeout_max,
            validate_template=templates.validate_template_params,
            template_media=templates.template_media_slots,
        )
        bucket = bucket_config(self.settings, s3_config)  # a malformed bucket fails before any work
        if request.template is not None and not self.role_filenames:
            problem = self.model_report.missing_error() if self.model_report is not None else None
            raise JobFailure(
                f"template {request.template!r} needs the LTX-2 models, but {problem or 'no model set is active'}"
            )
        await self._ensure_comfyui()
        object_info = await self.client.object_info()
        if request.workflow is not None:
            problems = class_problems(request.workflow, object_info) + override_problems(
                request.workflow, request.params, object_info
            )
            if problems:
                raise InputError(problems)
            self._check_models(request.workflow)
        watch.mark("validate_ms")

        media_files = await self._place_media(job_id, request, files)
        watch.mark("media_ms")

        if request.template is not None:
            prompt = templates.render_template(
                request.template,
                request.template_params or {},
                model_files=self.role_filenames,
                media_files=media_files,
            )
            problems = override_problems(prompt, request.params, object_info)
            if problems:
                raise InputError(problems)
            self._check_models(prompt)
        else:
            prompt = copy.deepcopy(request.workflow or {})
        apply_overrides(prompt, request.params)
        folder = f"{JOBS_SUBFOLDER}/{job_folder_key(job_id)}"
        scope_output_prefixes(prompt, object_info, folder)
        files.output_dir = (self.settings.output_dir / folder).resolve()

        prompt_id = str(uuid.uuid4())
        state["prompt_id"] = prompt_id
        terminal, node_outputs = await self._execute(job, prompt_id, prompt, request.timeout, watch, state)
        kind = terminal["type"]
        if kind == "execution_error":
            raise execution_failure(terminal.get("data") or {})
        if kind == "execution_interrupted":
            raise interrupted_failure(
                terminal.get("data") or {},
                "the prompt was interrupted in ComfyUI (by /interrupt or a cancel)",
            )

        result = await self._deliver(job_id, request, node_outputs, folder, bucket, files, watch)
        result["prompt_id"] = prompt_id
        if request.template is not None:
            result["template"] = request.template
            result["parameters"] = _public_parameters(request.template_params or {}, media_files)
        return result

    # --- models -----------------------------------------------------------------------------------
    def _check_models(self, prompt: Mapping[str, Any]) -> None:
        """A loader naming a model this worker cannot serve gets the full story before queueing."""
        if self.model_report is None:
            return
        problem = self.model_report.job_error(prompt, self.lock)
        if problem:
            raise JobFailure(f"this worker cannot serve the models the job needs: {problem}")

    def _model_hint(self) -> str | None:
        if not self.role_filenames:
            return None
        names = ", ".join(sorted(set(self.role_filenames.values())))
        model_set = getattr(self.model_report, "model_set", None)
        return (
            f"the active model set {model_set!r} provides: {names}"
            if model_set
            else f"available models: {names}"
        )

    # --- ComfyUI health -------------------------------------------------------------------------
    async def _ensure_comfyui(self) -> None:
        """ComfyUI up before a job: wait for a restart in progress, or start one."""
        if self._restart is not None and not self._restart.done():
            log.info("ComfyUI is restarting; the job waits for it")
            await asyncio.wrap_future(self._restart)
        if self.comfy.alive:
            return
        log.warning("ComfyUI is not running (exit code %s); restarting it", self.comfy.exit_code)
        await asyncio.wrap_future(self._restart_in_background())
        if not self.comfy.alive:
            raise JobFailure(
                "ComfyUI is down and did not restart",
                [{"comfyui_log": self.comfy.log_tail(30)}],
                refresh_worker=True,
            )

    # --- media --------------------------------------------------------------------------------------
    async def _place_media(self, job_id: str, request: JobRequest, files: _JobFiles) -> dict[str, str]:
        """Decode or download every media input, then write each into ComfyUI's input folder."""
        loaded = await asyncio.gather(
            *(self.media.load(ref, f"input.{where}") for where, ref in request.media.items()),
            return_exceptions=True,
        )
        problems = [p for result in loaded if isinstance(result, InputError) for p in result.problems]
        if problems:
            raise InputError(problems)  # every bad medium at once
        for result in loaded:
            if isinstance(result, BaseException):
                raise result
        by_key = dict(zip(request.media, loaded, strict=True))
        for index, upload in enumerate(request.images):
            data, _mime = by_key[f"images[{index}]"]
            files.created_dirs.extend(_missing_parents(self.settings.input_dir, upload.name))
            files.inputs.append(write_input_file(self.settings.input_dir, upload.name, data))
        media_files: dict[str, str] = {}
        tag = re.sub(r"[^A-Za-z0-9]", "", job_id)[-12:] or "job"
        for key, (data, mime) in by_key.items():
            if key.startswith("images["):
                continue
            name = f"job-{tag}-{uuid.uuid4().hex[:6]}-{key}{sniff_extension(data, mime)}"
            files.inputs.append(write_input_file(self.settings.input_dir, name, data))
            media_files[key] = name
        return media_files

    # --- execution ------------------------------------------------------------------------------------
    async def _execute(
        self,
        job: Mapping[str, Any],
        prompt_id: str,
        prompt: dict[str, Any],
        timeout: float,
        watch: Stopwatch,
        state: dict[str, Any],
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        tracker = PromptTracker.for_prompt(prompt_id, prompt)
        try:
            await self.client.connect()  # first: a session rebuilt for this loop drops old subscriptions
        except TimeoutError:
            raise JobFailure(
                f"ComfyUI's WebSocket on {self.settings.comfyui_url} did not open within 10 s",
                refresh_worker=True,
            ) from None
        queue = self.client.subscribe(prompt_id)
        state["tracker"], state["queue"] = tracker, queue
        try:
            answer = await self.client.queue_prompt(prompt, prompt_id)
        except ComfyRejected as rejected:
            raise validation_failure(rejected.body, model_hint=self._model_hint()) from None
        except ComfyHTTPError as exc:
            raise JobFailure(f"could not queue the prompt: {exc}") from None
        if answer.get("node_errors"):
            # ComfyUI queued the valid outputs and silently dropped the others: refuse the job.
            with contextlib.suppress(ComfyHTTPError):
                await self.client.cancel(prompt_id)
            raise validation_failure({"node_errors": answer["node_errors"]}, model_hint=self._model_hint())
        watch.mark("queue_ms")
        try:
            needs_history = await self._follow(job, tracker, queue, timeout)
        except _TimedOut:
            raise await self._stop_after_timeout(tracker, queue, timeout) from None
        except _ComfyDied as died:
            tail = self.comfy.log_tail(30)
            self._restart_in_background()
            raise JobFailure(
                f"ComfyUI exited with code {died.code} while running the job (see comfyui_log); the worker restarts it",
                [{"message": f"ComfyUI exited with code {died.code}", "node_id": tracker.progress().node}],
                comfyui_log=tail,
                refresh_worker=True,
            ) from None
        watch.mark("run_ms")
        terminal = tracker.terminal or {}
        node_outputs = tracker.outputs
        if needs_history or (terminal.get("type") == "execution_success" and not node_outputs):
            entry = await self.client.history(tracker.prompt_id)
            if entry is not None:
                node_outputs = entry.get("outputs") or node_outputs
        return terminal, node_outputs

    async def _follow(
        self,
        job: Mapping[str, Any],
        tracker: PromptTracker,
        queue: asyncio.Queue[dict[str, Any]],
        timeout: float,
    ) -> bool:
        """Wait for the prompt's terminal message; True when messages may have been missed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        death = self.comfy.exit_future()
        next_progress = 0.0
        missed = False
        getter: asyncio.Future[dict[str, Any]] | None = None
        try:
            while not tracker.finished:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise _TimedOut()
                if getter is None:
                    getter = asyncio.ensure_future(queue.get())
                poll_after = QUIET_POLL_SECONDS if self.client.websocket_up else DOWN_POLL_SECONDS
                done, _ = await asyncio.wait(
                    {getter, death}, timeout=min(remaining, poll_after), return_when=asyncio.FIRST_COMPLETED
                )
                if death in done:
                    raise _ComfyDied(death.result())
                if getter in done:
                    message = getter.result()
                    getter = None
                    if message is RECONNECTED or message is DISCONNECTED:
                        missed = True
                        if message is RECONNECTED:
                            await self._poll_terminal(tracker)
                        continue
                    changed = tracker.feed(message)
                    if (
                        changed
                        and not tracker.finished
                        and loop.time() >= next_progress
                        and self._send_progress(job, tracker)
                    ):
                        next_progress = loop.time() + self.settings.progress_interval
                else:
                    # Silence: the socket may be down or stuck; ask ComfyUI directly.
                    if await self._poll_terminal(tracker):
                        missed = True
        finally:
            if getter is not None:
                getter.cancel()
            death.cancel()
        return missed

    async def _poll_terminal(self, tracker: PromptTracker) -> bool:
        """Ask /api/jobs (0.2x) or /history whether the prompt has ended; adopt the answer."""
        try:
            job = await self.client.job(tracker.prompt_id)
            terminal = terminal_from_job(job) if job else None
            if terminal is None and job is None:
                entry = await self.client.history(tracker.prompt_id)
                terminal = terminal_from_history(entry) if entry else None
        except ComfyHTTPError as exc:
            log.debug("status poll failed: %s", exc)
            return False
        if terminal is not None and tracker.terminal is None:
            tracker.terminal = terminal
            return True
        return False

    async def _stop_prompt(self, tracker: PromptTracker, queue: asyncio.Queue[dict[str, Any]]) -> bool:
        """Cancel the prompt and wait (up to INTERRUPT_GRACE) until ComfyUI says it stopped."""
        with contextlib.suppress(ComfyHTTPError):
            await self.client.cancel(tracker.prompt_id)
        deadline = time.monotonic() + self.settings.interrupt_grace
        while tracker.terminal is None and time.monotonic() < deadline:
            try:
                tracker.feed(await asyncio.wait_for(queue.get(), timeout=0.5))
            except TimeoutError:
                await self._poll_terminal(tracker)
        return tracker.terminal is not None

    async def _stop_after_timeout(
        self, tracker: PromptTracker, queue: asyncio.Queue[dict[str, Any]], timeout: float
    ) -> JobFailure:
        progress = tracker.progress()
        where = f" at node {progress.node} ({progress.class_type})" if progress.node else ""
        log.warning("job timed out after %.0f s%s; interrupting ComfyUI", timeout, where)
        message = f"the job timed out after {timeout:g} s{where}"
        if await self._stop_prompt(tracker, queue):
            return JobFailure(
                f"{message}; ComfyUI stopped the prompt", [{"message": message, "node_id": progress.node}]
            )
        # ComfyUI ignores the interrupt (a node without progress hooks, or a hang): restart it.
        self._restart_in_background(kill=True)
        return JobFailure(
            f"{message}; ComfyUI did not stop within {self.settings.interrupt_grace:g} s (INTERRUPT_GRACE), "
            "so it is being restarted",
            [{"message": message, "node_id": progress.node}],
            refresh_worker=True,
        )

    def _restart_in_background(self, kill: bool = False) -> Future[None]:
        """Restart ComfyUI on the restart thread (one restart at a time); jobs wait for it."""
        if self._restart is None or self._restart.done():
            self._restart = self._restarter.submit(self._restart_quietly, kill)
        return self._restart

    def _restart_quietly(self, kill: bool) -> None:
        try:
            if kill:
                self.comfy.stop(grace=2.0)
            self.comfy.restart()
            self.client.forget_object_info()
        except ComfyStartupError as exc:
            log.error("ComfyUI did not restart: %s", exc)

    def _send_progress(self, job: Mapping[str, Any], tracker: PromptTracker) -> bool:
        """Report progress (RunPod on the platform, the log everywhere); False if nothing to say."""
        update = tracker.progress().as_update()
        if "node" not in update:
            return False  # nothing to say before the first node starts
        if self.on_platform:
            import runpod

            runpod.serverless.progress_update(dict(job), update)
        steps = f" step {update['step']}/{update['steps']}" if "step" in update else ""
        log.info(
            "progress %.0f%%: node %s (%s)%s",
            update["percent"],
            update["node"],
            update.get("class_type"),
            steps,
        )
        return True

    # --- outputs ---------------------------------------------------------------------------------------
    async def _deliver(
        self,
        job_id: str,
        request: JobRequest,
        node_outputs: Mapping[str, Any],
        folder: str,
        bucket: Any,
        files: _JobFiles,
        watch: Stopwatch,
    ) -> dict[str, Any]:
        roots = {"output": self.settings.output_dir, "temp": self.settings.temp_dir}
        # Every file the prompt reported is the job's to clean up, previews included...
        every = out.stat_outputs(out.collect_output_refs(node_outputs, include_temp=True), roots)
        files.reported.extend(f.path for f in every if files.output_dir not in f.path.parents)
        # ...but previews are returned only when asked for.
        found = [f for f in every if request.output.previews or f.ref.type != "temp"]
        job_root = files.output_dir or self.settings.output_dir
        names = [self._object_name(f, job_root) for f in found]
        delivery, items = await deliver_outputs(
            found,
            mode=request.output.delivery,
            inline_limit=self.settings.inline_max_bytes - self._result_reserve(request),
            bucket=bucket,
            job_id=job_id,
            object_names=names,
        )
        if self.settings.outputs_on_volume and found:
            await asyncio.to_thread(self._keep_on_volume, job_id, found, names, items)
        watch.mark("deliver_ms")
        return {"status": "success", "outputs": items, "delivery": delivery}

    def _result_reserve(self, request: JobRequest) -> int:
        """Room the rest of the result takes: the model report, the parameters, ids and timings."""
        parameters = len(json.dumps(request.template_params, default=str)) if request.template_params else 0
        return self._models_size + parameters + 2048

    def _object_name(self, file: out.OutputFile, job_root: Path) -> str:
        """The output's name relative to the job's folder (or its ComfyUI folder): no '..' ever."""
        for root in (job_root, self.settings.output_dir, self.settings.temp_dir):
            with contextlib.suppress(ValueError):
                return file.path.relative_to(root.resolve()).as_posix()
        return file.path.name

    def _keep_on_volume(
        self, job_id: str, found: list[out.OutputFile], names: list[str], items: list[dict[str, Any]]
    ) -> None:
        volume = self.settings.runpod_volume
        if not volume.is_dir():
            log.warning("OUTPUTS_ON_VOLUME is set but %s is not mounted; outputs are not kept", volume)
            return
        target_root = volume / "outputs" / re.sub(r"[^A-Za-z0-9_.-]", "_", job_id)
        for file, name, item in zip(found, names, items, strict=False):
            target = target_root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file.path, target)
            item["volume_path"] = str(target)


async def deliver_outputs(
    found: list[out.OutputFile],
    *,
    mode: str,
    inline_limit: int,
    bucket: Any,
    job_id: str,
    object_names: list[str],
) -> tuple[str, list[dict[str, Any]]]:
    """Describe each output file and attach its bytes (base64) or its bucket URL."""
    delivery = out.choose_delivery(
        mode,
        inline_bytes=out.inline_size(found),
        limit=inline_limit,
        bucket_available=bucket is not None,
        file_count=len(found),
    )
    items: list[dict[str, Any]] = out.OutputList()
    if delivery == "inline":
        for file in found:
            # Inline results are small (INLINE_MAX_BYTES): encoding on the loop thread is quick and
            # keeps the buffers in the main allocator arena, which holds the peak memory down.
            data, digest = out.read_inline(file.path)
            items.append({**out.describe(file, digest), "data": data})
    elif delivery == "url":
        digests = await asyncio.gather(*(asyncio.to_thread(sha256_file, f.path) for f in found))
        urls = await upload_files(
            bucket, job_id, [(f.path, n, f.mime) for f, n in zip(found, object_names, strict=True)]
        )
        for file, digest, url in zip(found, digests, urls, strict=True):
            items.append({**out.describe(file, digest), "url": url})
    return delivery, items


def _missing_parents(root: Path, relative_name: str) -> list[Path]:
    """Folders between ``root`` and the file that do not exist yet, outermost first."""
    missing = []
    folder = root
    for part in Path(relative_name).parts[:-1]:
        folder = folder / part
        if not folder.exists():
            missing.append(folder)
    return missing


def _public_parameters(params: Mapping[str, Any], media_files: Mapping[str, str]) -> dict[str, Any]:
    """The template parameters used, with media shown by the file they became (not their bytes)."""
    shown = dict(params)
    for key, name in media_files.items():
        shown[key] = {"file": name}
    return shown
