"""The ComfyUI double's package: pure protocol parts (schema, validation, jobs, media, folders)
and the server and executor that use them. It needs only the standard library and aiohttp."""
