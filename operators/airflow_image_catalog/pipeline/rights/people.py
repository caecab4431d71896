"""People in a photo, found without downloading anything: faces, with the LBP frontal-face cascade that
scikit-image ships inside its wheel (``skimage.data.lbp_frontal_face_cascade_filename()``, OpenCV's
``lbpcascade_frontalface`` model) run by ``skimage.feature.Cascade``.

Why this model: the pinned OpenCV (5.0) wheels no longer carry the Haar / LBP cascade files under
``cv2.data`` nor the HOG people detector, and its YuNet face detector needs ONNX weights that no
installed package ships; scikit-image's cascade is the one face model on the machine. It finds
frontal faces only (no bodies, no profiles, no faces turned away): a photo whose people show no
frontal face passes as "no people". ``make bench-people`` prints its miss and false-positive rates
on bundled photos with and without people; the README quotes them.

Speed and false positives: the image is decoded at reduced size (JPEG draft mode) and searched at
``max_side`` pixels on its longest side, for faces of at least ``min_face`` of its shorter side
(smaller ones are background passers-by, not a model the photo is about); on colour photos a
detection must also be skin-coloured (Cr 133..173 and Cb 77..127 in YCbCr, Chai & Ngan 1999) in
part of its centre, which drops most hits on texture (gravel, grass, brick).
"""

from __future__ import annotations

import io
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

DETECTOR = "skimage-lbp-frontalface"
DEFAULT_MAX_SIDE = 400
DEFAULT_MIN_FACE = 0.12
MIN_SKIN_SHARE = 0.2  # of the central half of a detection, on colour images

_local = threading.local()


@dataclass(frozen=True)
class PeopleFinding:
    """Faces found in one image: count, boxes (fractions of width / height) and how it was searched."""

    faces: int
    boxes: list[list[float]] = field(default_factory=list)  # [x, y, w, h], 0..1
    detector: str = DETECTOR
    searched_at: list[int] = field(default_factory=list)  # [width, height] of the searched image
    seconds: float = 0.0

    @property
    def people(self) -> bool:
        return self.faces > 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cascade():
    """One cascade per thread (the detector keeps per-call buffers)."""
    if getattr(_local, "cascade", None) is None:
        from skimage.data import lbp_frontal_face_cascade_filename
        from skimage.feature import Cascade

        _local.cascade = Cascade(lbp_frontal_face_cascade_filename())
    return _local.cascade


def _decoded(data: bytes, max_side: int):
    """RGB (or L) pixels at about ``max_side`` on the longest side, decoded reduced where the format can."""
    import numpy as np
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (max_side, max_side))  # JPEG: decode at 1/2, 1/4 or 1/8 scale
        image = ImageOps.exif_transpose(image)
        image = image.convert("L" if image.mode in ("1", "L", "I", "I;16", "F") else "RGB")
        image.thumbnail((max_side, max_side))
        return np.asarray(image)


def _skin_share(rgb, box: dict[str, int]) -> float:
    """Share of skin-coloured pixels in the central half of ``box``."""
    import numpy as np

    r, c, h, w = box["r"], box["c"], box["height"], box["width"]
    centre = rgb[r + h // 4:r + h * 3 // 4, c + w // 4:c + w * 3 // 4].astype(np.float32)
    if centre.size == 0:
        return 0.0
    red, green, blue = centre[..., 0], centre[..., 1], centre[..., 2]
    y = 0.299 * red + 0.587 * green + 0.114 * blue
    cr, cb = (red - y) * 0.713 + 128, (blue - y) * 0.564 + 128
    skin = (cr >= 133) & (cr <= 173) & (cb >= 77) & (cb <= 127)
    return float(skin.mean())


def is_colour(pixels) -> bool:
    """Whether an RGB array has colour at all (a greyscale photo saved as RGB has none)."""
    import numpy as np

    if pixels.ndim != 3:
        return False
    sample = pixels[::4, ::4].astype(np.int16)
    return bool(np.abs(sample[..., 0] - sample[..., 1]).mean() + np.abs(sample[..., 1] - sample[..., 2]).mean() > 4)


def find_faces(pixels, *, min_face: float = DEFAULT_MIN_FACE) -> list[dict[str, int]]:
    """Face boxes (``r``, ``c``, ``width``, ``height`` in pixels) in an RGB or greyscale uint8 array."""
    import numpy as np

    grey = pixels.astype(np.float32) / 255.0
    if grey.ndim == 3:
        grey = grey[..., 0] * 0.299 + grey[..., 1] * 0.587 + grey[..., 2] * 0.114
    height, width = grey.shape
    smallest = max(24, int(min_face * min(height, width)))  # the model's window is 24 x 24
    if min(height, width) < smallest:
        return []
    boxes = _cascade().detect_multi_scale(img=grey, scale_factor=1.25, step_ratio=1, min_size=(smallest, smallest),
                                          max_size=(height, width), min_neighbor_number=4)
    if is_colour(pixels):
        boxes = [box for box in boxes if _skin_share(pixels, box) >= MIN_SKIN_SHARE]
    return boxes


def detect_people(data: bytes, *, max_side: int = DEFAULT_MAX_SIDE, min_face: float = DEFAULT_MIN_FACE) -> PeopleFinding:
    """Faces in an encoded image (any format Pillow reads); an unreadable file raises Pillow's error."""
    started = time.perf_counter()
    pixels = _decoded(data, max_side)
    height, width = pixels.shape[:2]
    boxes = find_faces(pixels, min_face=min_face)
    relative = [[round(b["c"] / width, 4), round(b["r"] / height, 4), round(b["width"] / width, 4),
                 round(b["height"] / height, 4)] for b in boxes]
    return PeopleFinding(len(boxes), relative, searched_at=[width, height],
                         seconds=round(time.perf_counter() - started, 4))
