"""Local edit engine: pure numpy/OpenCV/Pillow image ops, no network and no model weights.

Importing the package registers every op in ``OPS``.
"""

from __future__ import annotations

from . import background, canvas, color, regions  # noqa: F401  (registers the ops)
from .errors import EngineError, ImageDecodeError, NoSubjectError, OpParamError
from .imageio import decode_image, encode_image, image_format
from .ops import OPS, OpSpec, ParamSpec, apply_op, engine_op, get_op
from .subject import backdrop_fit, find_subject, subject_mask

__all__ = [
    "OPS",
    "EngineError",
    "ImageDecodeError",
    "NoSubjectError",
    "OpParamError",
    "OpSpec",
    "ParamSpec",
    "apply_op",
    "backdrop_fit",
    "decode_image",
    "encode_image",
    "engine_op",
    "find_subject",
    "get_op",
    "image_format",
    "subject_mask",
]
