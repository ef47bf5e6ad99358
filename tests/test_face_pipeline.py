"""model/face/: detection counts on real photos, alignment accuracy, paste-back without seams."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from model.face.alignment import (
    FFHQ_TEMPLATE_512,
    alignment_matrix,
    apply_affine,
    dlib5_template_512,
    similarity_lstsq,
    template_points,
    warp_face,
)
from model.face.detection import DlibDetector, choose_upsample
from model.face.paste import LanczosUpsampler, inverse_affine, paste_faces, soft_face_mask
from model.imageio import decode_image

# Faces per whole photo, counted by eye on the photos with the detections drawn (every box on a face,
# every visible frontal face boxed). 59 faces in all; the Solvay photo has 29 faces of 38-55 px.
REALWORLD_FACES = {
    "CodeFormer/inputs/whole_imgs/00.jpg": 4,
    "CodeFormer/inputs/whole_imgs/01.jpg": 4,
    "CodeFormer/inputs/whole_imgs/02.png": 4,
    "CodeFormer/inputs/whole_imgs/03.jpg": 1,  # plus a man seen from behind: no face to restore
    "CodeFormer/inputs/whole_imgs/04.jpg": 1,
    "CodeFormer/inputs/whole_imgs/05.jpg": 1,
    "CodeFormer/inputs/whole_imgs/06.png": 2,
    "DFDNet/TestData/TestWhole/test1.jpg": 1,
    "DFDNet/TestData/TestWhole/test2.jpg": 1,
    "DFDNet/TestData/TestWhole/test3.jpg": 1,
    "DFDNet/TestData/TestWhole/test4.jpg": 1,
    "DFDNet/TestData/TestWhole/test5.jpg": 1,
    "DFDNet/TestData/TestWhole/test6.png": 1,
    "DifFace/testdata/Solvay_conference_1927.png": 29,
    "GFPGAN/inputs/whole_imgs/00.jpg": 2,
    "GFPGAN/inputs/whole_imgs/10045.png": 3,
    "GFPGAN/inputs/whole_imgs/Blake_Lively.jpg": 2,
}


def smooth_image(height: int = 160, width: int = 200) -> np.ndarray:
    """A smooth BGR image with values in 40..200 (room for a +40 offset without clipping)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 120 + 40 * np.sin(x / 23.0) * np.cos(y / 17.0)
    return np.stack([base, base * 0.9 + 10, 240 - base], -1).round().astype(np.uint8)


def face_matrix(center: tuple[float, float], side: float, face_size: int, angle: float = 0.0) -> np.ndarray:
    """Similarity taking a `side`-px square centred at `center` (rotated by `angle` deg) to the crop."""
    to_photo = cv2.getRotationMatrix2D((face_size / 2, face_size / 2), angle, side / face_size)
    to_photo[:, 2] += np.array(center) - face_size / 2
    return cv2.invertAffineTransform(to_photo)


# -- alignment ----------------------------------------------------------------------------------------------
def test_similarity_lstsq_recovers_a_known_transform():
    truth = cv2.getRotationMatrix2D((10, 20), 17.0, 1.7)
    truth[:, 2] += (5, -3)
    fitted = similarity_lstsq(FFHQ_TEMPLATE_512, apply_affine(truth, FFHQ_TEMPLATE_512))
    np.testing.assert_allclose(fitted, truth, atol=1e-9)


def test_fitted_dlib_template_is_a_face():
    """dlib's points 0,1 / 2,3 are the outer, inner corners of the right / left (image) eye, 4 the nose
    base; the fitted template must sit around the FFHQ eyes and above the FFHQ mouth."""
    dlib5 = dlib5_template_512()
    eye_left, eye_right = FFHQ_TEMPLATE_512[0], FFHQ_TEMPLATE_512[1]
    assert np.linalg.norm(dlib5[2:4].mean(0) - eye_left) < 15
    assert np.linalg.norm(dlib5[0:2].mean(0) - eye_right) < 15
    assert FFHQ_TEMPLATE_512[2, 1] < dlib5[4, 1] < FFHQ_TEMPLATE_512[3, 1]


def test_alignment_on_aligned_val_faces(shared_dir):
    """On already aligned faces the estimated alignment is nearly the identity: the crop's eyes, as
    re-detected in the crop, land within 12 px (512 scale) of the template."""
    detector = DlibDetector(upsample=0)  # 512-px faces need no up-sampling
    files = sorted((shared_dir / "data" / "faces" / "val-512").glob("*.jpg"))[:20]
    crop_errors, identity_errors = [], []
    for path in files:
        image = cv2.imread(str(path))
        faces = detector.detect(image)
        assert faces, f"no face found in aligned face {path.name}"
        matrix = alignment_matrix(faces[0].landmarks, 512)
        identity_errors.append(np.abs(apply_affine(matrix, FFHQ_TEMPLATE_512) - FFHQ_TEMPLATE_512).max())
        again = detector.detect(warp_face(image, matrix, 512))
        assert again, f"no face found in the aligned crop of {path.name}"
        crop_errors.append(np.linalg.norm(again[0].landmarks[:2] - FFHQ_TEMPLATE_512[:2], axis=1).max())
    assert max(crop_errors) <= 12.0, crop_errors
    assert np.mean(identity_errors) <= 8.0, identity_errors


def test_template_scales_with_face_size():
    np.testing.assert_allclose(template_points(256) * 2, FFHQ_TEMPLATE_512)


# -- detection ----------------------------------------------------------------------------------------------
def test_upsampling_follows_photo_size():
    assert choose_upsample(568, 1328) == 2  # Solvay: 38-px faces need two doublings
    assert choose_upsample(175, 288) == 1  # small photo: one doubling, fewer false positives
    assert choose_upsample(1920, 1297) == 1  # 2.5 MP: x4 fits the 16 MP budget, x16 does not
    assert choose_upsample(6000, 4000) == 0


@pytest.mark.parametrize("relative", sorted(REALWORLD_FACES))
def test_detection_counts_on_real_photos(shared_dir, relative):
    image = decode_image(shared_dir / "data" / "realworld" / relative).bgr8()
    faces = DlibDetector().detect(image)
    assert len(faces) == REALWORLD_FACES[relative]
    for face in faces:
        left, top, right, bottom = face.box
        eyes = face.landmarks[:2]
        assert eyes[0, 0] < eyes[1, 0], "left eye left of the right eye"
        assert left - 10 <= eyes[:, 0].min() and eyes[:, 0].max() <= right + 10
        assert top - 10 <= eyes[:, 1].min() and eyes[:, 1].max() <= bottom + 10


def test_no_face_in_a_plain_image():
    assert DlibDetector().detect(smooth_image()) == []


# -- paste-back ---------------------------------------------------------------------------------------------
def paste_one(image: np.ndarray, matrix: np.ndarray, face: np.ndarray, upscale: int) -> tuple[np.ndarray, ...]:
    background = LanczosUpsampler().upsample(image, upscale)
    output = paste_faces(background.copy(), [face], [matrix], upscale)
    height, width = background.shape[:2]
    mask = soft_face_mask(inverse_affine(matrix, upscale), face.shape[0], (0, 0, width, height), upscale)
    return background, output, mask


def test_identity_paste_equals_lanczos_outside_faces_and_is_close_inside():
    image = smooth_image()
    matrix = face_matrix((90, 70), 80, 64, angle=12)
    crop = warp_face(image, matrix, 64)
    background, output, mask = paste_one(image, matrix, crop, 2)
    np.testing.assert_array_equal(output[mask == 0], background[mask == 0])
    assert (mask == 0).mean() > 0.5 and (mask > 0.999).sum() > 1000
    difference = np.abs(output.astype(int) - background.astype(int))
    assert difference.max() <= 8 and difference.mean() < 0.5


def test_paste_has_no_seam():
    """A restored face 40 levels brighter than the photo: the blend must ramp, never step."""
    image = smooth_image()
    matrix = face_matrix((100, 80), 90, 64, angle=-8)
    crop = warp_face(image, matrix, 64)
    _, output, mask = paste_one(image, matrix, crop + 40, 2)
    background = LanczosUpsampler().upsample(image, 2)
    residual = output.astype(np.float32) - background.astype(np.float32)
    assert residual[mask > 0.999].mean() == pytest.approx(40, abs=2)  # the face really is pasted
    steps = max(np.abs(np.diff(residual, axis=0)).max(), np.abs(np.diff(residual, axis=1)).max())
    assert steps <= 8, f"largest jump {steps} of a 40-level offset: a seam"


def test_face_over_the_border_and_16_bit_background():
    image16 = smooth_image().astype(np.uint16) * 257
    image8 = (image16 // 257).astype(np.uint8)
    matrix = face_matrix((5, 150), 90, 64)  # centred on the left edge, half outside
    crop = warp_face(image8, matrix, 64)
    background = LanczosUpsampler().upsample(image16, 3)
    output = paste_faces(background.copy(), [crop], [matrix], 3)
    assert output.dtype == np.uint16 and output.shape == (480, 600, 3)
    changed = np.argwhere(np.abs(output.astype(int) - background.astype(int)).max(-1) > 257 * 8)
    assert len(changed) == 0  # identity face: at most resampling differences
    outside = paste_faces(background.copy(), [crop], [face_matrix((-500, -500), 90, 64)], 3)
    np.testing.assert_array_equal(outside, background)
