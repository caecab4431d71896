"""Free image features that routing and canary sampling stratify on: size, backdrop, text, fill.

"Free" means computed from the source's own pixels in milliseconds, with no model and no
request: a downscaled copy (``ANALYSIS_SIDE``), the engine's smooth backdrop model fitted to the
border band, and morphology. They are coarse on purpose: a canary samples across their strata,
and the router (issue 20) keeps its pass-rate estimates per stratum, so each stratum must fill
up with data quickly. The buckets:

* ``size``: the source's long side, ``small`` (< 1000 px), ``medium`` (< 2000 px) or ``large``;
* ``backdrop``: ``transparent`` (a cut-out's alpha), ``white`` (border near white and even),
  ``plain`` (border even, any colour or a smooth gradient), ``busy`` (a scene);
* ``text``: printed text present (rows of stroke-sized marks, light on dark or dark on light);
* ``fill``: the product's bounding-box long side over the image's, ``small`` (< 0.5),
  ``normal`` or ``tight`` (> 0.9; touching the frame reads as tight).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

ANALYSIS_SIDE = 384
SIZE_BUCKETS = ((1000, "small"), (2000, "medium"))  # long side below -> bucket; else "large"
#: border residual (levels, RMS around the fitted backdrop) below which the backdrop counts as plain
PLAIN_RESIDUAL = 9.0
#: a plain backdrop whose fitted colour is at least this bright on every channel counts as white
WHITE_LEVEL = 232.0
#: a pixel belongs to the product when it is this far (max channel) from the fitted backdrop
PRODUCT_LEVELS = 28.0
FILL_BUCKETS = ((0.5, "small"), (0.9, "normal"))  # fill below -> bucket; else "tight"
#: a text row: at least this many stroke marks of similar height side by side
TEXT_MIN_MARKS = 4
#: text is looked for on a copy this size (letters of a label stay a few pixels tall), strokes this dark/light
TEXT_SIDE = 768
STROKE_LEVELS = 60


@dataclass(frozen=True)
class ImageFeatures:
    """One source image's free features (see the module notes for the buckets)."""

    width: int
    height: int
    size: str
    backdrop: str
    text: bool
    fill: float
    fill_bucket: str

    @property
    def stratum(self) -> str:
        """The stratum key sampling and routing group by: ``backdrop/text|notext/fill bucket/size``."""
        return "/".join((self.backdrop, "text" if self.text else "notext", self.fill_bucket, self.size))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "stratum": self.stratum}


def _bucket(value: float, buckets: tuple[tuple[float, str], ...], last: str) -> str:
    return next((name for limit, name in buckets if value < limit), last)


def _downscaled(image: Any) -> Any:
    import cv2

    h, w = image.shape[:2]
    scale = min(1.0, ANALYSIS_SIDE / max(h, w))
    if scale == 1.0:
        return image
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def _text_rows(marks: Any) -> int:
    """The most letter-sized marks side by side on one line in a binary stroke map."""
    import cv2

    count, _, stats, centres = cv2.connectedComponentsWithStats(marks, connectivity=8)
    boxes = sorted((stats[i, 0], stats[i, 2], stats[i, 3], centres[i, 1]) for i in range(1, count)
                   if 4 <= stats[i, 3] <= 48 and stats[i, 2] <= 3 * stats[i, 3] and stats[i, 4] >= 4)
    best = 0
    for i, (x, w, h, cy) in enumerate(boxes):
        row, right = 1, x + w
        for x2, w2, h2, cy2 in boxes[i + 1:]:
            if x2 - right > 1.5 * h:
                break
            if abs(cy2 - cy) <= 0.5 * h and 0.5 <= h2 / h <= 2.0:
                row, right = row + 1, max(right, x2 + w2)
        best = max(best, row)
    return best


def text_present(rgb: Any) -> bool:
    """Whether the image shows a row of printed marks: black-hat (dark on light) or top-hat (light on
    dark) strokes of letter size, at least :data:`TEXT_MIN_MARKS` of similar height on one line.

    Measured on the procedural samples (their label text known): 11 of 12 right (a curved can's
    label is missed); on busy scenes texture reads as text, so the flag means little there.
    """
    import cv2
    import numpy as np

    h, w = rgb.shape[:2]
    scale = min(1.0, TEXT_SIDE / max(h, w))
    if scale < 1.0:
        rgb = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (15, 15))
    return any(_text_rows((cv2.morphologyEx(grey, op, kernel) > STROKE_LEVELS).astype(np.uint8)) >= TEXT_MIN_MARKS
               for op in (cv2.MORPH_BLACKHAT, cv2.MORPH_TOPHAT))


def features_of(image: Any) -> ImageFeatures:
    """The features of a decoded image (RGB, or RGBA for a cut-out)."""
    import numpy as np

    from airflow_image_catalog.imaging.engine.subject import border_band, fit_background

    height, width = image.shape[:2]
    small = _downscaled(image)
    rgb = small[..., :3]
    h, w = rgb.shape[:2]
    band = border_band(h, w)
    if small.shape[-1] == 4 and float(np.mean(small[..., 3][band] < 128)) > 0.5:
        product = small[..., 3] >= 128
        backdrop = "transparent"
    else:
        fitted = fit_background(rgb, band)
        residual = float(np.sqrt(np.mean((rgb[band].astype(np.float32) - fitted[band]) ** 2)))
        product = np.abs(rgb.astype(np.float32) - fitted).max(axis=-1) > PRODUCT_LEVELS
        if residual >= PLAIN_RESIDUAL:
            backdrop = "busy"
        else:
            backdrop = "white" if float(fitted[band].mean(axis=0).min()) >= WHITE_LEVEL else "plain"
    ys, xs = np.nonzero(product)
    fill = (max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1) / max(h, w)) if len(ys) else 0.0
    return ImageFeatures(width=int(width), height=int(height), size=_bucket(max(width, height), SIZE_BUCKETS, "large"),
                         backdrop=backdrop, text=text_present(image[..., :3]), fill=round(float(fill), 3),
                         fill_bucket=_bucket(fill, FILL_BUCKETS, "tight"))


def image_features(data: bytes) -> ImageFeatures:
    """The features of an encoded source image (JPEG, PNG, WebP, ... as the engine decodes them)."""
    from airflow_image_catalog.imaging.engine import decode_image

    return features_of(decode_image(data, keep_alpha=True))
