"""Storage: one small layer over `s3://bucket/key` URIs and local paths, used by the scheduler (listing)
and the workers (read, atomic write). Imports boto3 only when an S3 URI is touched.

- Listing streams (a paginated generator), so a million-object prefix never sits in memory.
- Writes are atomic: local files go to a temp file in the target folder then `os.replace`; an S3 object
  is one PutObject, which S3 makes visible all at once (no multipart, no partial object).
- `safe_join(dest, rel_key)` is the only way to build an output location: it rejects keys that could
  escape the destination (`..`, absolute paths, control characters, backslashes, empty segments).
- Errors are sorted for the worker: `ObjectNotFound` / `StorageError` are the item's fault (record a
  failure); `TransientStorageError` (connection refused, timeouts, 5xx, throttling after botocore's own
  retries) means "try again later" and must never mark an item failed.

S3 client: endpoint from `WGFPGAN_S3_ENDPOINT_URL` (SeaweedFS, MinIO...), credentials from the standard
AWS environment/config chain, SigV4, path-style addressing, botocore "standard" retry mode.
"""

from __future__ import annotations

import mimetypes
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from wgfpgan.config import Settings

IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "tif", "tiff", "webp", "bmp", "gif"})


class StorageError(Exception):
    """A permanent problem with one object (permission denied, is a directory...)."""

    code = "storage_error"


class ObjectNotFound(StorageError):
    code = "source_missing"


class TransientStorageError(Exception):
    """The store is unreachable or overloaded; retry later, never fail the item for it."""


class UnsafeKey(ValueError):
    """A relative key that could escape the destination."""

    code = "unsafe_key"


@dataclass(frozen=True)
class ListedObject:
    uri: str
    rel_key: str  # relative to the listed prefix/folder, "/"-separated
    size: int


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/key` -> ("bucket", "some/key")."""
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"not an s3://bucket/key URI: {uri!r}")
    return bucket, key


def normalize_location(location: str) -> str:
    """A canonical form for job identity: `s3://bucket/prefix/` or an absolute folder path."""
    if is_s3(location):
        bucket, prefix = split_s3(location)
        prefix = prefix.strip("/")
        return f"s3://{bucket}/{prefix}/" if prefix else f"s3://{bucket}/"
    return str(Path(location).expanduser().resolve())


def is_image_key(key: str) -> bool:
    return PurePosixPath(key).suffix.lower().lstrip(".") in IMAGE_EXTENSIONS


# ---------------------------------------------------------------------------------------------- keys


def validate_rel_key(rel_key: str) -> None:
    """Raise UnsafeKey unless `rel_key` is a plain relative "/"-separated path."""
    if not rel_key:
        raise UnsafeKey("empty key")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in rel_key):
        raise UnsafeKey(f"control character in key {rel_key!r}")
    if "\\" in rel_key:
        raise UnsafeKey(f"backslash in key {rel_key!r}")
    if rel_key.startswith("/"):
        raise UnsafeKey(f"absolute key {rel_key!r}")
    parts = rel_key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafeKey(f"key {rel_key!r} has an empty, '.' or '..' segment")
    if len(rel_key.encode()) > 1024:
        raise UnsafeKey("key longer than 1024 bytes")


def safe_join(dest: str, rel_key: str) -> str:
    """DEST + rel_key, guaranteed to stay inside DEST (also through symlinks for local folders)."""
    validate_rel_key(rel_key)
    if is_s3(dest):
        bucket, prefix = split_s3(dest)
        prefix = prefix.strip("/")
        return f"s3://{bucket}/{prefix}/{rel_key}" if prefix else f"s3://{bucket}/{rel_key}"
    root = Path(dest).resolve()
    target = (root / rel_key).resolve()
    if not target.is_relative_to(root):
        raise UnsafeKey(f"key {rel_key!r} resolves outside {root}")
    return str(target)


def with_extension(rel_key: str, ext: str) -> str:
    """The output key for a result encoded as `ext`: unchanged if the source already has that family's
    extension (photo.jpeg stays photo.jpeg for a JPEG), else the extension is appended (scan.tif ->
    scan.tif.png) so two sources can never map to the same output."""
    families = {"jpg": {"jpg", "jpeg"}, "png": {"png"}}
    suffix = PurePosixPath(rel_key).suffix.lower().lstrip(".")
    if suffix in families.get(ext, {ext}):
        return rel_key
    return f"{rel_key}.{ext}"


# ------------------------------------------------------------------------------------------- listing


def iter_objects(location: str, *, page_size: int = 1000, images_only: bool = True) -> Iterator[ListedObject]:
    """Every object under `location` (an S3 prefix or a folder), streamed in key order per page."""
    objects = _iter_s3(location, page_size) if is_s3(location) else _iter_local(location)
    for obj in objects:
        if not images_only or is_image_key(obj.rel_key):
            yield obj


def _iter_s3(location: str, page_size: int) -> Iterator[ListedObject]:
    bucket, prefix = split_s3(normalize_location(location))
    paginator = s3_client().get_paginator("list_objects_v2")
    pages = paginator.paginate(Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size})
    with _translate_s3_errors(f"s3://{bucket}/{prefix}"):
        for page in pages:
            for entry in page.get("Contents", []):
                key = entry["Key"]
                if key.endswith("/"):
                    continue  # a "folder" marker
                yield ListedObject(f"s3://{bucket}/{key}", key[len(prefix) :], int(entry.get("Size", 0)))


def _iter_local(location: str) -> Iterator[ListedObject]:
    root = Path(location).expanduser().resolve()
    if not root.is_dir():
        raise ObjectNotFound(f"not a folder: {root}")
    for folder, dirs, files in os.walk(root):  # symlinked folders are not followed
        dirs.sort()
        for name in sorted(files):
            path = Path(folder) / name
            if path.is_symlink() or not path.is_file() or (name.startswith(".") and name.endswith(".tmp")):
                continue
            rel = path.relative_to(root).as_posix()
            yield ListedObject(str(path), rel, path.stat().st_size)


# -------------------------------------------------------------------------------------- read / write


def read_bytes(uri: str) -> bytes:
    if is_s3(uri):
        bucket, key = split_s3(uri)
        with _translate_s3_errors(uri):
            return s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
    with _translate_os_errors(uri):
        return Path(uri).read_bytes()


def write_bytes_atomic(uri: str, data: bytes) -> None:
    """Write `data` so that readers see either nothing/the old object or the complete new one."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        with _translate_s3_errors(uri):
            s3_client().put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
        return
    target = Path(uri)
    with _translate_os_errors(uri):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def check_destination(location: str) -> None:
    """Fail fast (StorageError) when an S3 destination bucket does not exist or cannot be reached;
    local folders are created on the first write."""
    if not is_s3(location):
        return
    bucket, _ = split_s3(location)
    try:
        with _translate_s3_errors(f"s3://{bucket}"):
            s3_client().head_bucket(Bucket=bucket)
    except ObjectNotFound:
        raise StorageError(f"the destination bucket {bucket!r} does not exist") from None


def exists(uri: str) -> bool:
    if is_s3(uri):
        bucket, key = split_s3(uri)
        try:
            with _translate_s3_errors(uri):
                s3_client().head_object(Bucket=bucket, Key=key)
        except ObjectNotFound:
            return False
        return True
    return Path(uri).is_file()


# ------------------------------------------------------------------------------------------ S3 client

_clients: dict[tuple[int, str | None, int], Any] = {}
_clients_lock = threading.Lock()


def s3_client() -> Any:
    """A boto3 S3 client per process (clients must not cross a fork) and configuration."""
    settings = Settings.from_env()
    cache_key = (os.getpid(), settings.s3_endpoint_url, settings.s3_max_attempts)
    with _clients_lock:
        client = _clients.get(cache_key)
        if client is None:
            client = _clients[cache_key] = _make_client(settings.s3_endpoint_url, settings.s3_max_attempts)
        return client


def _make_client(endpoint_url: str | None, max_attempts: int) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=5,
        read_timeout=60,
        # S3-compatible stores do not all understand the newer default CRC trailers.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


class _translate_s3_errors:
    """Map botocore exceptions onto ObjectNotFound / StorageError / TransientStorageError."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:  # type: ignore[no-untyped-def]
        if exc is None:
            return False
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if code in ("NoSuchKey", "NotFound", "404", "NoSuchBucket") or status == 404:
                raise ObjectNotFound(f"{self.uri}: not found ({code or status})") from None
            if status >= 500 or status in (408, 429) or code in ("SlowDown", "RequestTimeout", "Throttling"):
                raise TransientStorageError(f"{self.uri}: {code or status}") from None
            raise StorageError(f"{self.uri}: {code or status} {error.get('Message', '')}".strip()) from None
        if isinstance(exc, BotoCoreError):  # connection refused/reset, timeouts, incomplete reads
            raise TransientStorageError(f"{self.uri}: {type(exc).__name__}: {exc}") from None
        return False


class _translate_os_errors:
    def __init__(self, uri: str) -> None:
        self.uri = uri

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:  # type: ignore[no-untyped-def]
        if exc is None or not isinstance(exc, OSError):
            return False
        if isinstance(exc, FileNotFoundError):
            raise ObjectNotFound(f"{self.uri}: no such file") from None
        if isinstance(exc, PermissionError | IsADirectoryError | NotADirectoryError):
            raise StorageError(f"{self.uri}: {exc.strerror}") from None
        raise TransientStorageError(f"{self.uri}: {exc.strerror or exc}") from None
