"""Media inputs: decoded or downloaded (size- and time-capped, public addresses only), then
written atomically into ComfyUI's input folder.

URL fetching refuses private, loopback, link-local and other non-global addresses unless
MEDIA_ALLOW_PRIVATE_URLS is set: the check runs on every address a host name resolves to (so
DNS tricks do not help) and on every redirect hop.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from handler.fsutil import write_atomic
from handler.job.schema import InputError, MediaRef, decode_base64
from handler.settings import Settings

log = logging.getLogger("handler.media")

MAX_REDIRECTS = 5
_SIGNATURES: list[tuple[int, bytes, str]] = [
    (0, b"\x89PNG\r\n\x1a\n", ".png"),
    (0, b"\xff\xd8\xff", ".jpg"),
    (0, b"GIF87a", ".gif"),
    (0, b"GIF89a", ".gif"),
    (0, b"\x1a\x45\xdf\xa3", ".webm"),
    (0, b"fLaC", ".flac"),
    (0, b"ID3", ".mp3"),
    (0, b"OggS", ".ogg"),
]
_MIME_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "video/mp4": ".mp4",
    "video/webm": ".webm",
    "video/quicktime": ".mov",
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "audio/flac": ".flac",
    "audio/mpeg": ".mp3",
}


def sniff_extension(data: bytes, mime: str | None = None) -> str:
    """A file extension for media bytes, from their signature (then the declared type)."""
    head = data[:16]
    for offset, magic, extension in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return extension
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return ".wav"
    if head[4:8] == b"ftyp":
        return ".mov" if head[8:10] == b"qt" else ".mp4"
    return _MIME_EXTENSIONS.get((mime or "").lower(), ".bin")


def address_allowed(address: str) -> bool:
    """Public (globally routable) unicast addresses only."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class _PublicOnlyResolver(AbstractResolver):
    """Resolves with the default resolver, then drops every non-public address."""

    def __init__(self) -> None:
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if address_allowed(r["host"])]
        if not allowed:
            shown = ", ".join(sorted({r["host"] for r in results}))
            # aiohttp wraps an OSError from the resolver in ClientConnectorDNSError.
            raise OSError(f"{host} resolves only to non-public addresses ({shown})")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


class MediaError(InputError):
    pass


class MediaLoader:
    """Turns media references into bytes, within the configured caps."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def load(self, ref: MediaRef, where: str) -> tuple[bytes, str | None]:
        """(bytes, declared mime) for a media reference."""
        if ref.kind == "url":
            return await self.fetch(ref.payload, where)
        return decode_base64(ref.payload, where, self.settings.media_max_bytes), ref.mime

    async def fetch(self, url: str, where: str) -> tuple[bytes, str | None]:
        allow_private = self.settings.media_allow_private_urls
        limit = self.settings.media_max_bytes
        connector = aiohttp.TCPConnector(resolver=None if allow_private else _PublicOnlyResolver(), limit=2)
        timeout = aiohttp.ClientTimeout(total=self.settings.media_fetch_timeout)
        shown = _redact_url(url)
        try:
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
                current = url
                for _hop in range(MAX_REDIRECTS + 1):
                    _check_literal_host(current, allow_private, where)
                    async with session.get(current, allow_redirects=False) as response:
                        if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                            current = urljoin(current, response.headers["Location"])
                            continue
                        if response.status != 200:
                            raise MediaError([f"{where}: {shown} answered HTTP {response.status}"])
                        declared = response.content_length
                        if declared is not None and declared > limit:
                            raise MediaError(
                                [
                                    f"{where}: {shown} is {declared} bytes, over the {limit}-byte limit (MEDIA_MAX_BYTES)"
                                ]
                            )
                        data = bytearray()
                        async for chunk in response.content.iter_chunked(1 << 16):
                            data += chunk
                            if len(data) > limit:
                                raise MediaError(
                                    [f"{where}: {shown} is over the {limit}-byte limit (MEDIA_MAX_BYTES)"]
                                )
                        if not data:
                            raise MediaError([f"{where}: {shown} returned no data"])
                        return bytes(data), response.content_type
                raise MediaError([f"{where}: {shown} redirected more than {MAX_REDIRECTS} times"])
        except MediaError:
            raise
        except TimeoutError:
            raise MediaError(
                [
                    f"{where}: downloading {shown} took longer than {self.settings.media_fetch_timeout:g} s (MEDIA_FETCH_TIMEOUT)"
                ]
            ) from None
        except aiohttp.ClientConnectorError as exc:
            reason = exc.os_error or exc
            hint = (
                ""
                if allow_private
                else " (private, loopback and link-local addresses are refused unless MEDIA_ALLOW_PRIVATE_URLS=true)"
            )
            raise MediaError([f"{where}: cannot connect to {shown}: {reason}{hint}"]) from None
        except aiohttp.ClientError as exc:
            raise MediaError([f"{where}: downloading {shown} failed: {exc}"]) from None


def _check_literal_host(url: str, allow_private: bool, where: str) -> None:
    host = urlsplit(url).hostname or ""
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise MediaError(
            [f"{where}: only http(s) URLs can be fetched (a redirect led to {urlsplit(url).scheme}:)"]
        )
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return  # a host name: the resolver checks every address it resolves to
    if not allow_private and not address_allowed(host):
        raise MediaError(
            [f"{where}: {host} is not a public address; refused (set MEDIA_ALLOW_PRIVATE_URLS=true to allow)"]
        )


def _redact_url(url: str) -> str:
    """The URL without query string or credentials (presigned URLs carry secrets there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def write_input_file(input_dir: Path, relative_name: str, data: bytes) -> Path:
    """Write ``data`` at ``input_dir/relative_name`` atomically, never outside ``input_dir``."""
    target = (input_dir / relative_name).resolve()
    root = input_dir.resolve()
    if root not in target.parents:
        raise MediaError([f"{relative_name!r} would leave ComfyUI's input folder"])
    target.parent.mkdir(parents=True, exist_ok=True)
    # Not durable: the file lives only as long as the job, which a crash ends anyway.
    write_atomic(target, data, durable=False)
    return target
