"""dlib's face descriptor (its face-recognition ResNet, 128-D) on a face with known landmarks,
and dlib's decision threshold for it: the identity measure of the quality reports."""

from __future__ import annotations

import dlib
import numpy as np

from datagen.face.landmarks import dlib_model_path

# dlib's documented decision threshold: two descriptors nearer than this are the same person
SAME_PERSON = 0.6


class FaceDescriptor:
    """``descriptor(rgb, landmarks)``: the 128-D descriptor of the face whose 68 landmarks
    (pixels of ``rgb``, uint8 H x W x 3) are given; dlib aligns its 150x150 chip from them."""

    def __init__(self) -> None:
        self.net = dlib.face_recognition_model_v1(
            str(dlib_model_path("dlib_face_recognition_resnet_model_v1.dat"))
        )

    def __call__(self, rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        x0, y0 = landmarks.min(0)
        x1, y1 = landmarks.max(0)
        rect = dlib.rectangle(int(x0), int(y0), int(x1), int(y1))
        points = [dlib.point(int(x), int(y)) for x, y in landmarks]
        shape = dlib.full_object_detection(rect, points)
        return np.asarray(self.net.compute_face_descriptor(np.ascontiguousarray(rgb), shape))
