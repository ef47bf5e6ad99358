"""Keys and paths that try to escape: an S3 key or a manifest entry with `..`, an absolute path, control
characters, backslashes or empty segments — and, for folders, symlinks — can never make `wgfpgan run`
read or write outside SOURCE/DEST. Tested on both storage kinds: local folders and S3 (SeaweedFS)."""

from __future__ import annotations

import json
import os
import posixpath
from pathlib import Path

import pytest

from db import Database
from db import queries as q
from wgfpgan import storage
from wgfpgan.cli import main

HOSTILE_KEYS = [
    "../escape.png", "a/../../escape.png", "a/../b.png", "./a.png", "a/./b.png", "..", ".", "",
    "/etc/passwd.png", "//server/share.png", "a//b.png", "a/", "a\\..\\..\\escape.png", "C:\\evil.png",
    "ctl\x01.png", "new\nline.png", "tab\t.png", "nul\x00.png", "del\x7f.png", "esc\x1b[31m.png",
    "a/\r/b.png", "..\\..\\x.png", "x" * 1100 + ".png", "%2e%2e/encoded.png", "ok/normal photo (1).png",
]  # fmt: skip


@pytest.mark.parametrize("dest", ["s3://bucket/out/", "s3://bucket/", "/srv/archive/out"])
def test_safe_join_never_leaves_the_destination(dest: str, tmp_path: Path) -> None:
    if not storage.is_s3(dest):
        dest = str(tmp_path / "out")
    root = dest if storage.is_s3(dest) else str(Path(dest).resolve()) + "/"
    accepted = []
    for key in HOSTILE_KEYS:
        try:
            joined = storage.safe_join(dest, key)
        except storage.UnsafeKey:
            continue
        accepted.append(key)
        inside = joined[len(root.rstrip("/")) + 1 :] if joined.startswith(root.rstrip("/") + "/") else None
        assert inside, (key, joined)
        assert posixpath.normpath(inside) == inside and not inside.startswith(".."), (key, joined)
        assert all(ord(ch) >= 32 and ord(ch) != 127 for ch in inside), (key, joined)
    # Only the plain relative keys pass (a literal "%2e%2e" is a folder name, not a parent reference).
    assert accepted == ["%2e%2e/encoded.png", "ok/normal photo (1).png"]


def tree(root: Path, skip: tuple[Path, ...]) -> dict[str, tuple[int, float]]:
    """Every file under `root` except inside `skip`, with size and mtime."""
    snapshot = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if Path(folder, d) not in skip]
        for name in files:
            path = Path(folder, name)
            if not path.is_symlink():
                snapshot[str(path)] = (path.stat().st_size, path.stat().st_mtime)
    return snapshot


@pytest.fixture
def run_env(tiny_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WGFPGAN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("WGFPGAN_DATABASE_URL", raising=False)
    monkeypatch.setenv("WGFPGAN_MODEL", str(tiny_model_path))
    return tmp_path / "home" / "wgfpgan.sqlite3"


def run_job(capsys, source: str, dest: str, *extra: str) -> tuple[dict, list]:  # type: ignore[no-untyped-def]
    assert main(["run", source, "--out", dest, "--upscale", "1", "--json", *extra]) == 0
    result = json.loads(capsys.readouterr().out)
    database = Database.from_settings()
    items = database.run(q.list_items, result["id"], limit=1000)
    database.dispose()
    return result, items


def test_folders_hostile_names_symlinks_and_manifest(run_env: Path, tmp_path: Path, capsys) -> None:
    from faults_services import tiny_pngs

    png = next(iter(tiny_pngs(1, size=16).values()))
    source, dest, outside = tmp_path / "album", tmp_path / "restored", tmp_path / "outside"
    (source / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.png").write_bytes(png)
    names = ["ok.png", "sub/ok.png", "ctl\x01.png", "new\nline.png", "tab\t.png", "back\\slash.png",
             "esc\x1b[31m.png", "evil/x.png"]  # fmt: skip
    for name in names:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(png)
    (source / "link.png").symlink_to(outside / "secret.png")  # a symlink to a file outside: not listed
    (source / "linkdir").symlink_to(outside, target_is_directory=True)  # not followed
    dest.mkdir()
    (dest / "evil").symlink_to(outside, target_is_directory=True)  # an output folder that points outside
    before = tree(tmp_path, skip=(dest, tmp_path / "home"))

    _, items = run_job(capsys, str(source), str(dest))
    by_key = {item.rel_key: item for item in items}
    assert {"link.png"} & set(by_key) == set() and not any(k.startswith("linkdir") for k in by_key)
    for key in ("ok.png", "sub/ok.png"):
        assert by_key[key].state == "succeeded" and Path(by_key[key].output_uri) == dest / key
    unsafe = {item.rel_key: item for item in items if item.state == "failed"}
    assert {item.error_code for item in unsafe.values()} == {"unsafe_key"}
    assert len(unsafe) == 6 and "evil/x.png" in unsafe  # 5 hostile names + the symlinked output folder
    assert all(item.attempts == 0 or item.rel_key == "evil/x.png" for item in unsafe.values())
    assert tree(tmp_path, skip=(dest, tmp_path / "home")) == before, "something was written outside DEST"
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == ["ok.png", "sub/ok.png"]

    # A manifest naming paths outside SOURCE, absolute paths and control characters.
    manifest = tmp_path / "manifest.txt"
    entries = ["ok.png", "../outside/secret.png", f"{source}/../outside/secret.png", str(outside / "secret.png"),
               "sub/../ok.png", "./ok.png", "sub//ok.png", "ctl\x01.png", "back\\slash.png"]  # fmt: skip
    manifest.write_text("\n".join(entries) + "\n")
    dest2 = tmp_path / "restored2"
    before = tree(tmp_path, skip=(dest, tmp_path / "home"))
    _, items = run_job(capsys, str(source), str(dest2), "--manifest", str(manifest))
    states = {item.rel_key: (item.state, item.error_code) for item in items}
    assert states.pop("ok.png") == ("succeeded", None)
    # entries 2 and 3 name the same relative key (../outside/secret.png): one item
    assert len(states) == len(entries) - 2 and set(states.values()) == {("failed", "unsafe_key")}, states
    assert [p.name for p in dest2.rglob("*") if p.is_file()] == ["ok.png"]
    assert tree(tmp_path, skip=(dest, dest2, tmp_path / "home")) == before


@pytest.mark.services
def test_s3_hostile_keys_and_manifest(run_env: Path, s3_env, s3_bucket: str, tmp_path: Path, capsys) -> None:
    from faults_services import tiny_pngs

    png = next(iter(tiny_pngs(1, size=16).values()))
    client = s3_env.client()
    keys = ["in/ok.png", "in/sub/ok.png", "in/../escape.png", "in/a/../../top.png", "in//double.png",
            "in/./dot.png", "in/ctl\x01.png", "in/new\nline.png", "in/back\\slash.png", "in/tab\t.png"]  # fmt: skip
    stored = []
    for key in keys:
        try:
            client.put_object(Bucket=s3_bucket, Key=key, Body=png)
            stored.append(key)
        except Exception:  # the store itself refuses some keys: fine, they can never be listed
            continue
    before = {obj["Key"] for obj in client.list_objects_v2(Bucket=s3_bucket).get("Contents", [])}
    _, items = run_job(capsys, f"s3://{s3_bucket}/in/", f"s3://{s3_bucket}/out/")
    after = {obj["Key"] for obj in client.list_objects_v2(Bucket=s3_bucket).get("Contents", [])}
    new = after - before
    assert all(key.startswith("out/") for key in new), new
    for key in new:
        rel = key[len("out/") :]
        storage.validate_rel_key(rel)  # every written key is a plain relative key under out/
    assert {"out/ok.png", "out/sub/ok.png"} <= new
    for item in items:
        assert item.state in ("succeeded", "failed")
        if item.state == "failed":
            assert item.error_code == "unsafe_key", (item.rel_key, item.error_code)
        else:
            storage.validate_rel_key(item.rel_key)
    listed = [(item.rel_key, item.state) for item in items]

    manifest = tmp_path / "manifest.txt"
    manifest.write_text(
        "ok.png\n../escape.png\n/in/ok.png\nsub/../ok.png\nctl\x01.png\n"
        f"s3://{s3_bucket}/in/../out/ok.png\ns3://{s3_bucket}/other/ok.png\n"
    )
    _, items = run_job(capsys, f"s3://{s3_bucket}/in/", f"s3://{s3_bucket}/out2/", "--manifest", str(manifest))
    states = {item.rel_key: (item.state, item.error_code) for item in items}
    assert states.pop("ok.png") == ("succeeded", None)
    assert set(states.values()) == {("failed", "unsafe_key")}, states
    final = {obj["Key"] for obj in client.list_objects_v2(Bucket=s3_bucket).get("Contents", [])}
    assert final - after == {"out2/ok.png"}
    print(f"\nSeaweedFS stored the keys as {sorted(before)!r}; items {listed}")
