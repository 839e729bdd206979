"""RaIN's style pools: the non-uniformly lit (NI) faces whose statistics the VAE models, and
the uniformly lit (UI) content faces. Either a user's folders of NI photos (Yale B, say) or the
built-in pool: the bundled train faces relit physically from their 3-D fits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from datagen.core.images import ImageRejected, is_image_path, load_rgb, square_resize
from datagen.core.pairs import FaceImages, face_refs
from datagen.core.seeding import sample_rng
from datagen.face3d import morphable
from datagen.rain.model import LossWeights

if TYPE_CHECKING:
    from datagen.face3d.relight import RelightParams


@dataclass
class StylePool:
    """NI style images (uint8 N x S x S x 3) with where each came from. ``content_index``
    (built-in pool only) gives, per image, the position of the face it relights among
    ``content_faces`` of the same split: the pairs the ``paired`` loss learns from."""

    images: np.ndarray
    sources: list[str]
    rejects: list[dict[str, str]]
    content_index: np.ndarray | None = None

    def pairs(self, weights: LossWeights) -> np.ndarray | None:
        """``content_index`` when the paired term is on and this pool has pairs, else None."""
        return self.content_index if weights.paired else None


def folder_pool(folders: tuple[str, ...], size: int) -> StylePool:
    """Every image under the given folders (searched recursively), centre-cropped and resized.
    Unreadable files are recorded, not fatal; a missing folder or one with no image is."""
    images, sources, rejects = [], [], []
    for folder in folders:
        root = Path(folder)
        if not root.is_dir():
            raise FileNotFoundError(f"rain.style_folders: {root} is not a folder")
        paths = sorted(p for p in root.rglob("*") if p.is_file() and is_image_path(p))
        if not paths:
            raise ValueError(f"rain.style_folders: {root} holds no images")
        for p in paths:
            try:
                images.append(square_resize(load_rgb(p, 10**8, 16), size))
                sources.append(str(p))
            except ImageRejected as e:
                rejects.append({"source": str(p), "reason": e.reason, "detail": e.detail})
    return StylePool(np.stack(images), sources, rejects)


def physical_pool(
    faces_dir: Path,
    fits_dir: Path,
    size: int,
    per_face: int,
    relight_params: RelightParams,
    seed: int,
    split: str = "train",
) -> StylePool:
    """The built-in pool: each fitted face of ``split`` relit ``per_face`` times by Lambertian
    shading of its fitted shape (``datagen.face3d.relight``)."""
    from datagen.face3d.relight import relight

    refs, _ = face_refs(faces_dir)
    fits = morphable.load_fits(fits_dir)
    reader = FaceImages(faces_dir, "hr")
    images, sources, rejects, index = [], [], [], []
    todo = [r for r in refs if r.split == split]  # the order content_faces uses
    for i, ref in enumerate(tqdm(todo, desc="relight style pool", leave=False)):
        if ref.face_id not in fits:
            rejects.append({"source": ref.face_id, "reason": "no fit", "detail": ""})
            continue
        fit = morphable.fit_from_record(fits[ref.face_id])
        face = square_resize(reader(ref), size)
        for j in range(per_face):
            rng = sample_rng(seed, "rain_train", f"{ref.face_id}/{j}")
            images.append(relight(face, fit, rng, relight_params)[0])
            sources.append(f"{ref.face_id}/relit{j}")
            index.append(i)
    if not images:
        raise ValueError(f"no fitted {split} faces in {faces_dir} to relight for the style pool")
    return StylePool(np.stack(images), sources, rejects, np.array(index))


def content_faces(faces_dir: Path, size: int, split: str = "train") -> np.ndarray:
    refs, _ = face_refs(faces_dir)
    reader = FaceImages(faces_dir, "hr")
    faces = [square_resize(reader(r), size) for r in refs if r.split == split]
    if not faces:
        raise ValueError(f"{faces_dir} has no {split} faces to train RaIN on")
    return np.stack(faces)
