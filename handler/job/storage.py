"""Uploading outputs to an S3-compatible bucket and returning presigned URLs.

The bucket comes from the worker's ``BUCKET_*`` settings or from the request's ``s3Config``
(RunPod's per-request keys: ``accessId``, ``accessSecret``, ``bucketName``, ``endpointUrl``).
Keys and secrets are never logged: they are registered with the log scrubber before use.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from handler.comfy.errors import JobFailure
from handler.settings import Settings

_AWS_VIRTUAL_HOST = re.compile(
    r"^(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\.s3[.-](?:(?P<region>[a-z0-9-]+)\.)?amazonaws\.com$"
)


@dataclass(frozen=True)
class BucketConfig:
    endpoint_url: str
    bucket: str
    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    region: str | None = None
    url_expiry: int = 604800

    @property
    def addressing_style(self) -> str:
        # AWS prefers virtual-host URLs; MinIO, R2, B2 and test servers take path-style.
        return "virtual" if "amazonaws.com" in (urlsplit(self.endpoint_url).hostname or "") else "path"


def split_bucket_endpoint(endpoint_url: str) -> tuple[str, str | None, str | None]:
    """(service endpoint, bucket, region) for an endpoint that may name its bucket (pure).

    RunPod documents endpoints like ``https://BUCKET.s3.REGION.amazonaws.com``: the bucket is
    the first label and the service endpoint is the rest.
    """
    parts = urlsplit(endpoint_url)
    host = parts.hostname or ""
    match = _AWS_VIRTUAL_HOST.match(host)
    if not match:
        return endpoint_url.rstrip("/"), None, None
    service_host = host[len(match.group("bucket")) + 1 :]
    netloc = service_host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, "", "", "")), match.group("bucket"), match.group("region")


def bucket_config(settings: Settings, s3_config: Mapping[str, Any] | None) -> BucketConfig | None:
    """The bucket for this job: the request's ``s3Config`` wins over the environment (pure)."""
    if s3_config:
        keys = ("endpointUrl", "accessId", "accessSecret")
        missing = [k for k in keys if not s3_config.get(k)]
        if missing:
            raise JobFailure(
                f"s3Config is missing {', '.join(missing)} (needs endpointUrl, accessId, accessSecret, bucketName)"
            )
        endpoint, bucket, region = split_bucket_endpoint(str(s3_config["endpointUrl"]))
        bucket = str(s3_config.get("bucketName") or bucket or "")
        if not bucket:
            raise JobFailure("s3Config has no bucketName and its endpointUrl does not name a bucket")
        return BucketConfig(
            endpoint_url=endpoint,
            bucket=bucket,
            access_key_id=str(s3_config["accessId"]),
            secret_access_key=str(s3_config["accessSecret"]),
            region=region or settings.bucket_region,
            url_expiry=settings.bucket_url_expiry,
        )
    if not settings.bucket_endpoint_url:
        return None
    if settings.bucket_access_key_id is None or settings.bucket_secret_access_key is None:
        raise JobFailure(
            "BUCKET_ENDPOINT_URL is set but BUCKET_ACCESS_KEY_ID or BUCKET_SECRET_ACCESS_KEY is not"
        )
    endpoint, bucket, region = split_bucket_endpoint(settings.bucket_endpoint_url)
    bucket = settings.bucket_name or bucket
    if not bucket:
        raise JobFailure(
            "BUCKET_NAME is not set and BUCKET_ENDPOINT_URL does not name a bucket "
            "(expected https://BUCKET.s3.REGION.amazonaws.com, or set BUCKET_NAME)"
        )
    return BucketConfig(
        endpoint_url=endpoint,
        bucket=bucket,
        access_key_id=settings.bucket_access_key_id.get_secret_value(),
        secret_access_key=settings.bucket_secret_access_key.get_secret_value(),
        region=settings.bucket_region or region,
        url_expiry=settings.bucket_url_expiry,
    )


@lru_cache(maxsize=8)
def _client(config: BucketConfig) -> Any:
    import boto3  # loaded on first upload: most jobs return inline
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=config.endpoint_url,
        aws_access_key_id=config.access_key_id,
        aws_secret_access_key=config.secret_access_key,
        region_name=config.region or "us-east-1",
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": config.addressing_style},
            retries={"max_attempts": 5, "mode": "standard"},
            connect_timeout=10,
            read_timeout=120,
        ),
    )


def object_key(job_id: str, name: str) -> str:
    return f"{job_id}/{name}"


def _upload_one(config: BucketConfig, path: Path, key: str, mime: str) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    client = _client(config)
    try:
        client.upload_file(str(path), config.bucket, key, ExtraArgs={"ContentType": mime})
        return client.generate_presigned_url(
            "get_object", Params={"Bucket": config.bucket, "Key": key}, ExpiresIn=config.url_expiry
        )
    except (BotoCoreError, ClientError) as exc:
        raise JobFailure(
            f"uploading {path.name} to bucket {config.bucket!r} at {config.endpoint_url} failed: {exc}"
        ) from None


async def upload_files(
    config: BucketConfig, job_id: str, files: Sequence[tuple[Path, str, str]]
) -> list[str]:
    """Upload (path, name, mime) in parallel to ``<job id>/<name>``; presigned GET URLs in order.

    The keys are already registered with the log scrubber: the worker's at startup, a request's
    s3Config as the job starts.
    """
    tasks = [
        asyncio.to_thread(_upload_one, config, path, object_key(job_id, name), mime)
        for path, name, mime in files
    ]
    return list(await asyncio.gather(*tasks))
