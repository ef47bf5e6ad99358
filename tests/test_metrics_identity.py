"""dlib identity distance and landmarks (model/identity.py) on real aligned faces from ../shared."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from model.identity import ALIGNED_FACE_BOX, FaceIdentity, identity_distance, scale_box


@pytest.fixture(scope="module")
def identity() -> FaceIdentity:
    return FaceIdentity()


@pytest.fixture(scope="module")
def two_faces(shared_dir):
    folder = shared_dir / "data" / "faces" / "val-512"
    return [
        cv2.resize(cv2.imread(str(folder / f"{i:05d}.jpg")), (256, 256), interpolation=cv2.INTER_AREA)
        for i in (4500, 4501)
    ]


def test_identity_distance_is_euclidean():
    assert identity_distance(np.zeros(128), np.zeros(128)) == 0.0
    a, b = np.zeros(128), np.zeros(128)
    b[:2] = [3.0, 4.0]
    assert identity_distance(a, b) == pytest.approx(5.0)
    with pytest.raises(ValueError):
        identity_distance(np.zeros(128), np.zeros(64))


def test_scale_box_maps_fractions_to_inclusive_pixels():
    assert scale_box((0.25, 0.5, 0.75, 1.0), 200, 100) == (50, 50, 149, 99)


def test_identical_images_have_zero_distance_and_different_people_do_not(identity, two_faces):
    first = identity.analyze(two_faces[0])
    again = identity.analyze(two_faces[0].copy())
    other = identity.analyze(two_faces[1])
    assert first.detected and first.embedding.shape == (128,) and first.landmarks.shape == (5, 2)
    assert identity_distance(first.embedding, again.embedding) == 0.0
    assert identity_distance(first.embedding, other.embedding) > 0.3


def test_undetectable_aligned_face_falls_back_to_the_canonical_box(identity, two_faces):
    blurred = cv2.GaussianBlur(two_faces[0], (0, 0), 12)
    assert identity.detect(blurred) == []
    result = identity.analyze(blurred)
    assert not result.detected
    assert result.box == scale_box(ALIGNED_FACE_BOX, 256, 256)
    assert identity.analyze(blurred, fallback=None) is None


def test_given_box_is_used_and_landmarks_stay_on_the_face(identity, two_faces):
    reference = identity.analyze(two_faces[0])
    with_box = identity.analyze(two_faces[0], box=reference.box)
    assert with_box.box == reference.box
    assert np.array_equal(with_box.landmarks, reference.landmarks)
    left, top, right, bottom = reference.box
    assert np.all((with_box.landmarks[:, 0] >= left) & (with_box.landmarks[:, 0] <= right))
    assert np.all((with_box.landmarks[:, 1] >= top) & (with_box.landmarks[:, 1] <= bottom))


def test_small_aligned_faces_are_detected_by_upsampling(identity, two_faces):
    small = cv2.resize(two_faces[0], (64, 64), interpolation=cv2.INTER_AREA)
    assert FaceIdentity(upsample=0).detect(small) == []  # the face is ~35 px, under the HOG window
    assert identity.detect(small)  # found because small images are upsampled once
