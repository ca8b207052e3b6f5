"""Pure geometry: mapping points back from a turned image, the landmark plausibility check, pose signs."""

from __future__ import annotations

import numpy as np
import pytest

from facecompare.engine.geometry import rotate as _rotate
from facecompare.engine.geometry import unrotate_points as _unrotate_points
from facecompare.models.alignment import upright_landmarks
from facecompare.quality import pose_from_landmarks

FRONTAL = np.array([[40.0, 50.0], [80.0, 50.0], [60.0, 72.0], [45.0, 92.0], [75.0, 92.0]])


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_unrotate_inverts_rotate(rotation):
    image = np.zeros((60, 100, 3), dtype=np.uint8)  # height 60, width 100
    y, x = 12, 71
    image[y, x] = 255
    turned = _rotate(image, rotation)
    ty, tx = map(int, np.argwhere(turned[:, :, 0] == 255)[0])
    th, tw = turned.shape[:2]
    # pixel centres: the mapping works on continuous coordinates
    back = _unrotate_points(np.array([[tx + 0.5, ty + 0.5]]), rotation, tw, th)[0]
    assert back == pytest.approx([x + 0.5, y + 0.5])


def test_upright_landmarks_accepts_faces_and_rejects_the_rest():
    assert upright_landmarks(FRONTAL)
    upside_down = np.array([[120 - px, 140 - py] for px, py in FRONTAL])
    sideways = FRONTAL[:, ::-1].copy()
    collapsed = FRONTAL.copy()
    collapsed[:, 1] = 50 + (collapsed[:, 1] - 50) * 0.2  # eyes and mouth almost on one line
    assert not upright_landmarks(upside_down)
    assert not upright_landmarks(sideways)
    assert not upright_landmarks(collapsed)


def test_pose_of_a_frontal_face_and_a_tilted_one():
    pose = pose_from_landmarks(FRONTAL)
    assert abs(pose.roll) < 1 and abs(pose.yaw) < 5 and abs(pose.pitch) < 10
    angle = np.radians(20)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    tilted = (FRONTAL - FRONTAL.mean(axis=0)) @ rot.T + FRONTAL.mean(axis=0)
    assert pose_from_landmarks(tilted).roll == pytest.approx(20, abs=0.5)
    turned = FRONTAL.copy()
    turned[2, 0] -= 12  # nose towards the image left
    assert pose_from_landmarks(turned).yaw > 10
