"""Media fetching against a real HTTP server on loopback: caps, redirects, address checks."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import web

from handler.job.media import MediaLoader, address_allowed, sniff_extension, write_input_file
from handler.job.schema import InputError, MediaRef
from handler.settings import Settings

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
async def media_server():
    app = web.Application()

    async def png(_request):
        return web.Response(body=PNG, content_type="image/png")

    async def big(_request):
        return web.Response(body=b"x" * 5000, content_type="application/octet-stream")

    async def chunked(request):
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(10):
            await response.write(b"y" * 1000)
        await response.write_eof()
        return response

    async def slow(_request):
        await asyncio.sleep(1)
        return web.Response(body=PNG)

    async def missing(_request):
        return web.Response(status=404)

    async def loop_redirect(request):
        raise web.HTTPFound(f"/loop?n={int(request.query.get('n', 0)) + 1}")

    async def to_file(_request):
        raise web.HTTPFound("file:///etc/passwd")

    async def to_png(_request):
        raise web.HTTPFound("/png")

    for path, handler in {
        "/png": png,
        "/big": big,
        "/chunked": chunked,
        "/slow": slow,
        "/missing": missing,
        "/loop": loop_redirect,
        "/to-file": to_file,
        "/to-png": to_png,
    }.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def loader(**env) -> MediaLoader:
    return MediaLoader(Settings.from_env({k: str(v) for k, v in env.items()}))


async def fetch_problem(media: MediaLoader, url: str) -> str:
    with pytest.raises(InputError) as caught:
        await media.fetch(url, "input.image")
    return caught.value.problems[0]


async def test_loopback_is_refused_by_default(media_server):
    problem = await fetch_problem(loader(), f"{media_server}/png")
    assert (
        problem
        == "input.image: 127.0.0.1 is not a public address; refused (set MEDIA_ALLOW_PRIVATE_URLS=true to allow)"
    )


async def test_hostnames_resolving_to_loopback_are_refused(media_server):
    port = media_server.rsplit(":", 1)[1]
    problem = await fetch_problem(loader(), f"http://localhost:{port}/png")
    assert "resolves only to non-public addresses" in problem
    assert "MEDIA_ALLOW_PRIVATE_URLS" in problem


async def test_allowed_private_fetch_follows_redirects(media_server):
    media = loader(MEDIA_ALLOW_PRIVATE_URLS="true")
    data, mime = await media.load(MediaRef("url", f"{media_server}/to-png"), "input.image")
    assert (data, mime) == (PNG, "image/png")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/big", "5000 bytes, over the 1000-byte limit (MEDIA_MAX_BYTES)"),
        ("/chunked", "over the 1000-byte limit (MEDIA_MAX_BYTES)"),
        ("/missing", "answered HTTP 404"),
        ("/loop", "redirected more than 5 times"),
        ("/to-file", "only http(s) URLs can be fetched (a redirect led to file:)"),
    ],
)
async def test_caps_and_refusals(media_server, path, expected):
    media = loader(MEDIA_ALLOW_PRIVATE_URLS="true", MEDIA_MAX_BYTES=1000)
    assert expected in await fetch_problem(media, f"{media_server}{path}")


async def test_time_cap(media_server):
    media = loader(MEDIA_ALLOW_PRIVATE_URLS="true", MEDIA_FETCH_TIMEOUT=0.3)
    assert "took longer than 0.3 s (MEDIA_FETCH_TIMEOUT)" in await fetch_problem(
        media, f"{media_server}/slow"
    )


async def test_urls_in_errors_lose_their_query_string(media_server):
    problem = await fetch_problem(
        loader(MEDIA_ALLOW_PRIVATE_URLS="true"), f"{media_server}/missing?X-Amz-Signature=secret"
    )
    assert "secret" not in problem


async def test_connection_refused_is_explained():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    problem = await fetch_problem(loader(MEDIA_ALLOW_PRIVATE_URLS="true"), f"http://127.0.0.1:{port}/x")
    assert problem.startswith(f"input.image: cannot connect to http://127.0.0.1:{port}/x")


def test_address_classes():
    for address in [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.1",
        "172.16.0.1",
        "169.254.169.254",
        "::1",
        "fe80::1",
        "fc00::1",
        "0.0.0.0",
        "100.64.0.1",
        "::ffff:127.0.0.1",
        "224.0.0.1",
    ]:
        assert not address_allowed(address), address
    for address in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"]:
        assert address_allowed(address), address


def test_sniffing():
    assert sniff_extension(PNG) == ".png"
    assert sniff_extension(b"\xff\xd8\xff\xe0") == ".jpg"
    assert sniff_extension(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == ".webp"
    assert sniff_extension(b"\x00\x00\x00\x18ftypisom") == ".mp4"
    assert sniff_extension(b"\x1a\x45\xdf\xa3") == ".webm"
    assert sniff_extension(b"????", "video/mp4") == ".mp4"
    assert sniff_extension(b"????") == ".bin"


def test_input_files_are_written_atomically_inside_the_folder(tmp_path):
    path = write_input_file(tmp_path, "sub/a.png", PNG)
    assert path.read_bytes() == PNG
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["a.png"]
    with pytest.raises(InputError):
        write_input_file(tmp_path, "../escape.png", PNG)
