"""wgfpgan.storage on local folders and on a real SeaweedFS: listing, atomic writes, key safety."""

from __future__ import annotations

import os
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from wgfpgan import storage
from wgfpgan.storage import ObjectNotFound, TransientStorageError, UnsafeKey

UNSAFE_KEYS = [
    "../escape.jpg",
    "a/../../escape.jpg",
    "/etc/passwd",
    "a//b.jpg",
    "./a.jpg",
    "a/./b.jpg",
    "bad\x00name.jpg",
    "new\nline.jpg",
    "tab\there.jpg",
    "back\\slash.jpg",
    "",
    "..",
]


@pytest.mark.parametrize("key", UNSAFE_KEYS)
def test_safe_join_rejects_keys_that_could_escape(tmp_path: Path, key: str) -> None:
    with pytest.raises(UnsafeKey):
        storage.safe_join(str(tmp_path), key)
    with pytest.raises(UnsafeKey):
        storage.safe_join("s3://bucket/out/", key)


def test_safe_join_builds_keys_inside_the_destination(tmp_path: Path) -> None:
    assert storage.safe_join("s3://bucket/out/", "a/b.jpg") == "s3://bucket/out/a/b.jpg"
    assert storage.safe_join("s3://bucket", "a.jpg") == "s3://bucket/a.jpg"
    assert storage.safe_join(str(tmp_path), "x/y.png") == str(tmp_path / "x" / "y.png")
    assert storage.safe_join(str(tmp_path), "..hidden.jpg") == str(tmp_path / "..hidden.jpg")


def test_safe_join_refuses_a_symlink_pointing_outside(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    dest = tmp_path / "dest"
    outside.mkdir()
    dest.mkdir()
    (dest / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafeKey, match="outside"):
        storage.safe_join(str(dest), "link/file.jpg")


def test_output_extension_keeps_family_and_never_collides() -> None:
    assert storage.with_extension("a/photo.jpeg", "jpg") == "a/photo.jpeg"
    assert storage.with_extension("a/photo.JPG", "jpg") == "a/photo.JPG"
    assert storage.with_extension("scan.png", "png") == "scan.png"
    assert storage.with_extension("scan.tif", "png") == "scan.tif.png"
    assert storage.with_extension("photo.jpg", "png") == "photo.jpg.png"


def test_local_listing_streams_images_recursively_and_skips_symlinks(tmp_path: Path) -> None:
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    for rel in ("a.jpg", "b.PNG", "notes.txt", "sub/c.webp", "sub/deeper/d.tiff"):
        (tmp_path / rel).write_bytes(b"x" * 3)
    (tmp_path / "link.jpg").symlink_to(tmp_path / "a.jpg")
    listed = list(storage.iter_objects(str(tmp_path)))
    assert [o.rel_key for o in listed] == ["a.jpg", "b.PNG", "sub/c.webp", "sub/deeper/d.tiff"]
    assert all(o.size == 3 and Path(o.uri).is_file() for o in listed)
    everything = [o.rel_key for o in storage.iter_objects(str(tmp_path), images_only=False)]
    assert "notes.txt" in everything and "link.jpg" not in everything


def test_local_atomic_write_leaves_no_temp_files_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "out" / "x" / "photo.png"
    storage.write_bytes_atomic(str(target), b"first")
    storage.write_bytes_atomic(str(target), b"second")
    assert target.read_bytes() == b"second"
    assert sorted(os.listdir(target.parent)) == ["photo.png"]
    assert storage.exists(str(target)) and not storage.exists(str(tmp_path / "nope.png"))


def test_local_read_missing_is_object_not_found(tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFound):
        storage.read_bytes(str(tmp_path / "missing.jpg"))
    with pytest.raises(ObjectNotFound):
        list(storage.iter_objects(str(tmp_path / "no-such-folder")))


@pytest.mark.services
def test_s3_roundtrip_exists_and_missing(s3_env, s3_bucket: str) -> None:
    uri = f"s3://{s3_bucket}/out/a/photo.jpg"
    assert not storage.exists(uri)
    storage.write_bytes_atomic(uri, b"\xff\xd8data")
    assert storage.exists(uri)
    assert storage.read_bytes(uri) == b"\xff\xd8data"
    with pytest.raises(ObjectNotFound):
        storage.read_bytes(f"s3://{s3_bucket}/out/missing.jpg")


@pytest.mark.services
def test_s3_listing_paginates_past_1000_objects(s3_env, s3_bucket: str) -> None:
    client = s3_env.client()
    keys = [f"in/{i // 100:02d}/img{i:05d}.jpg" for i in range(1050)]

    def put(key: str) -> None:
        client.put_object(Bucket=s3_bucket, Key=key, Body=b"x")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, keys))
    client.put_object(Bucket=s3_bucket, Key="in/readme.txt", Body=b"text")
    client.put_object(Bucket=s3_bucket, Key="other/img.jpg", Body=b"x")

    listed = storage.iter_objects(f"s3://{s3_bucket}/in", page_size=100)
    rel_keys = [obj.rel_key for obj in listed]
    assert sorted(rel_keys) == sorted(k.removeprefix("in/") for k in keys)
    first = next(storage.iter_objects(f"s3://{s3_bucket}/in/", page_size=7))
    assert first.uri == f"s3://{s3_bucket}/in/00/img00000.jpg" and first.size == 1


@pytest.mark.services
def test_s3_unreachable_is_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WGFPGAN_S3_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("WGFPGAN_S3_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    with pytest.raises(TransientStorageError):
        storage.read_bytes("s3://bucket/key.jpg")


def _closed_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.services
def test_check_destination_fails_fast_on_a_missing_bucket(s3_env, s3_bucket: str, tmp_path: Path) -> None:
    storage.check_destination(f"s3://{s3_bucket}/out/")
    storage.check_destination(str(tmp_path / "not-yet-created"))
    with pytest.raises(storage.StorageError, match="does not exist"):
        storage.check_destination("s3://no-such-bucket-here/out/")
