"""The `eval` verb end to end on a few faces with the tiny random model, and the GT cache."""

from __future__ import annotations

import argparse
import csv
import json
import shutil

import cv2
import numpy as np
import pytest

from model import eval_cli, evaluate, metrics


@pytest.fixture(scope="module")
def four_faces(shared_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hq")
    for path in sorted((shared_dir / "data" / "faces" / "val-512").glob("*.jpg"))[:4]:
        shutil.copy(path, folder / path.name)
    return folder


def test_register_adds_the_eval_verb():
    parser = argparse.ArgumentParser()
    eval_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["eval", "--hq", "faces", "--preset", "mild", "--preset", "severe", "--limit", "3"])
    assert args.handler is eval_cli.run_eval
    assert args.preset == ["mild", "severe"] and args.limit == 3 and args.model is None
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", "--hq", "a", "--real", "b"])  # one source only


def test_unsharp_mask_sharpens_an_edge():
    step = np.zeros((32, 32, 3), np.uint8)
    step[:, 16:] = 200
    blurred = cv2.GaussianBlur(step, (0, 0), 2)
    assert metrics.gradient_energy(evaluate.unsharp_mask(blurred)) > metrics.gradient_energy(blurred)


def test_eval_cli_writes_the_four_outputs(four_faces, tiny_model_path, tmp_path, capsys):
    out = tmp_path / "report"
    argv = ["--hq", str(four_faces), "--model", str(tiny_model_path), "--preset", "medium"]
    code = eval_cli.main([*argv, "--out", str(out), "--no-cache", "--workers", "0", "--check"])
    assert code == 1  # random weights fail issue #4's acceptance; without --check the exit code is 0
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 4 * 3  # faces x (bicubic, unsharp, tiny)
    assert {r["method"] for r in rows} == {"bicubic", "unsharp", "tiny"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["size"] == 64 and summary["faces"] == 4
    assert set(summary["acceptance"]["checks"]) == {"psnr_gain_db", "identity_ratio", "sharpness_ratio"}
    assert "| medium | tiny |" in (out / "results.md").read_text()
    sheet = cv2.imread(str(out / "contact_medium.png"))
    assert sheet.shape[0] == 4 * evaluate.SHEET_TILE  # rows: LQ, unsharp, tiny, GT
    assert "Acceptance (issue #4" in capsys.readouterr().out

    # The bicubic row is the degraded input itself: recompute its PSNR independently.
    from model.degradations import apply_preset

    first = sorted(four_faces.iterdir())[0]
    gt = evaluate.resize_square(cv2.imread(str(first)), 64)
    bicubic = next(r for r in rows if r["face"] == first.name and r["method"] == "bicubic")
    expected = metrics.psnr(apply_preset(gt, "medium", seed=0), gt)
    assert float(bicubic["psnr"]) == pytest.approx(expected)


def test_ground_truth_cache_round_trip_and_worker_pool_agree(four_faces, tmp_path):
    kwargs = {"limit": 2, "size": 96, "presets": ["mild"], "cache_dir": tmp_path, "sheet_faces": 1}
    first = evaluate.evaluate_hq(four_faces, [], workers=0, **kwargs)
    cached = evaluate.EvalCache(tmp_path, four_faces, 96)
    assert len(cached.entries) == 2 and len(cached.scores) == 2 * 2  # faces x baselines
    second = evaluate.evaluate_hq(four_faces, [], workers=1, **kwargs)
    assert [r.identity for r in second.rows] == pytest.approx([r.identity for r in first.rows])
    assert [r.psnr for r in second.rows] == pytest.approx([r.psnr for r in first.rows])


def test_bad_model_or_folder_exit_2_with_a_message(tmp_path, four_faces, capsys):
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")
    assert eval_cli.main(["--hq", str(four_faces), "--model", str(broken), "--out", str(tmp_path / "o")]) == 2
    assert "broken.pth" in capsys.readouterr().err
    assert eval_cli.main(["--hq", str(tmp_path / "missing"), "--model", str(broken)]) == 2
    assert "missing" in capsys.readouterr().err


def test_unknown_preset_and_empty_folder_are_clear_errors(tmp_path, four_faces):
    with pytest.raises(ValueError, match="unknown preset"):
        evaluate.evaluate_hq(four_faces, [], presets=["extreme"])
    with pytest.raises(ValueError, match="no images"):
        evaluate.evaluate_hq(tmp_path, [], presets=["mild"])


def test_eval_real_writes_sheets_and_counts(shared_dir, tiny_model_path, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    source = shared_dir / "data" / "realworld"
    shutil.copy(source / "CodeFormer/inputs/whole_imgs/01.jpg", real / "photo.jpg")
    shutil.copy(source / "GFPGAN/inputs/cropped_faces/Adele_crop.png", real / "crop.png")
    (real / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a JPEG")
    out = tmp_path / "out"
    scores = evaluate.evaluate_real(real, out, str(tiny_model_path))
    assert [s.image for s in scores] == ["crop.png", "photo.jpg"]
    assert all(s.faces >= 1 for s in scores)
    assert all(np.isfinite(s.niqe_before) and np.isfinite(s.niqe_after) for s in scores)
    assert len(list((out / "sheets").glob("*.png"))) == 2
    report = json.loads((out / "real.json").read_text())
    totals = report["totals"]
    assert totals["images"] == 2 and totals["faces_restored"] == sum(s.faces for s in scores)
    assert totals["unreadable"] == 1 and "broken.jpg" in report["unreadable"][0]
    assert "| photo.jpg |" in (out / "real.md").read_text()
