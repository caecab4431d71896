"""Local edit engine: pure numpy/OpenCV/Pillow image ops, no network and no model weights.

Importing the package registers every op in ``OPS``.
"""

from __future__ import annotations

from . import background, canvas, color, regions  # noqa: F401  (registers the ops)
from ._common import flatten
from .errors import EngineError, ImageDecodeError, NoSubjectError, OpParamError
from .imageio import ALPHA_FORMATS, decode_image, encode_image, has_transparency, image_format
from .matte import cut_out, product_matte
from .ops import OPS, OpSpec, ParamSpec, apply_op, engine_op, get_op
from .subject import backdrop_fit, find_subject, subject_mask

__all__ = [
    "ALPHA_FORMATS",
    "OPS",
    "EngineError",
    "ImageDecodeError",
    "NoSubjectError",
    "OpParamError",
    "OpSpec",
    "ParamSpec",
    "apply_op",
    "backdrop_fit",
    "cut_out",
    "decode_image",
    "encode_image",
    "engine_op",
    "find_subject",
    "flatten",
    "get_op",
    "has_transparency",
    "image_format",
    "product_matte",
    "subject_mask",
]
