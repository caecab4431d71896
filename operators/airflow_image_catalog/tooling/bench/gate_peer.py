"""The peer ``make bench-quality`` holds the gate against: the checks a catalog team would script in an afternoon.

Pillow, NumPy and scikit-image only, nothing of the gate's: Amazon's rule read literally (the frame's border is
pure #FFFFFF), the product's share of the frame from the bounding box of what is not white, and the product's
crop compared with the source's (SSIM on grey at 256 px, the CIEDE2000 of their mean colours, the variance of
the Laplacian inside the product for sharpness, both crops at the source's size). It is handed the source's
true product mask (the corpus's), an advantage the gate does not have: what it misses, its checks miss.

Its limits are set the way the gate's were: on the tuning half's clean edits, each at the worst value a clean
edit reads there (so it quarantines none of them), then it judges the same held-out edits as the gate.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass

import numpy as np

#: the frame's border the pure-white rule reads (share of the side), and what counts as product in the edit
#: (any channel below this)
BORDER, PRODUCT_BELOW = 0.02, 245
#: each check: its metric, whether a low value fails, and the reason category it names
CHECKS = {
    "border_off": (False, "background"),
    "fill": (True, "framing"),
    "ssim": (True, "identity"),
    "colour_de": (False, "identity"),
    "sharpness": (True, "detail"),
}


def _rgb(data: bytes) -> np.ndarray:
    """RGB pixels, transparency composited onto white."""
    from PIL import Image

    img = Image.open(io.BytesIO(data))
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = np.asarray(img.convert("RGBA")).astype(np.float32)
        a = rgba[..., 3:] / 255.0
        return (rgba[..., :3] * a + 255.0 * (1 - a) + 0.5).astype(np.uint8)
    return np.asarray(img.convert("RGB"))


def _box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero(mask)
    return None if len(ys) == 0 else (int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1)


def measure(source_bytes: bytes, edited_bytes: bytes, source_mask: np.ndarray) -> dict[str, float]:
    """The peer's metrics for one edit of a source whose product is ``source_mask`` (a missing product reads
    as the worst value)."""
    from PIL import Image
    from skimage.color import deltaE_ciede2000, rgb2lab
    from skimage.metrics import structural_similarity

    src, out, alpha = _rgb(source_bytes), _rgb(edited_bytes), np.asarray(source_mask, bool)
    h, w = out.shape[:2]
    band = max(1, round(BORDER * min(h, w)))
    border = np.ones((h, w), bool)
    border[band:h - band, band:w - band] = False
    row = {"border_off": float(np.mean(np.any(out[border] != 255, axis=-1)))}
    product = out.min(axis=-1) < PRODUCT_BELOW
    box = _box(product)
    src_box = _box(alpha)
    if box is None or src_box is None:
        return row | {"fill": 0.0, "ssim": 0.0, "colour_de": 100.0, "sharpness": 0.0}
    row["fill"] = max((box[1] - box[0]) / h, (box[3] - box[2]) / w)
    crop = out[box[0]:box[1], box[2]:box[3]]
    inside = alpha[src_box[0]:src_box[1], src_box[2]:src_box[3]]
    # the source's product cut out onto white: what a right edit shows
    src_crop = np.where(inside[..., None], src[src_box[0]:src_box[1], src_box[2]:src_box[3]], 255).astype(np.uint8)
    size = (src_crop.shape[1], src_crop.shape[0])
    at_source = np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.LANCZOS))

    def grey(a: np.ndarray, side: int | None = None) -> np.ndarray:
        img = Image.fromarray(a).convert("L")
        return np.asarray(img.resize((side, side), Image.Resampling.LANCZOS) if side else img, np.float32)

    row["ssim"] = float(structural_similarity(grey(at_source, 256), grey(src_crop, 256), data_range=255))
    mine = at_source.min(axis=-1) < PRODUCT_BELOW
    mean_src = src_crop[inside].mean(axis=0)
    mean_out = at_source[mine].mean(axis=0) if mine.any() else at_source.reshape(-1, 3).mean(axis=0)
    lab = rgb2lab(np.stack([mean_src, mean_out])[None] / 255.0)[0]
    row["colour_de"] = float(deltaE_ciede2000(lab[0], lab[1]))

    def laplacian_var(a: np.ndarray) -> float:
        g = grey(a)
        lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4 * g[1:-1, 1:-1]
        core = inside[1:-1, 1:-1] & inside[:-2, 1:-1] & inside[2:, 1:-1] & inside[1:-1, :-2] & inside[1:-1, 2:]
        return float(lap[core].var()) if core.any() else 0.0

    row["sharpness"] = laplacian_var(at_source) / max(laplacian_var(src_crop), 1e-6)
    return row


@dataclass(frozen=True)
class Peer:
    """The peer's limits, each at the worst value of the tuning half's clean edits."""

    limits: dict[str, float]

    @classmethod
    def calibrated(cls, clean_rows: list[dict[str, float]]) -> Peer:
        if not clean_rows:
            raise ValueError("the peer needs clean edits to set its limits")
        return cls({k: (min if low else max)(r[k] for r in clean_rows) for k, (low, _) in CHECKS.items()})

    def categories(self, row: dict[str, float]) -> set[str]:
        """The reason categories of the checks this edit fails (empty: it passes)."""
        return {cat for k, (low, cat) in CHECKS.items()
                if (row[k] < self.limits[k] if low else row[k] > self.limits[k])}


def judged_alongside(peer: Peer, items, verdicts: dict[str, set[str]], seconds: list[float]):
    """Pass corpus items through unchanged, judging each with the peer on the way (its failed categories into
    ``verdicts`` by item name, its wall seconds appended to ``seconds``), so the gate and the peer see the same
    edits without the corpus being held in memory."""
    for item in items:
        t0 = time.perf_counter()
        verdicts[item.name] = peer.categories(measure(item.product.source_bytes(), item.edited_bytes,
                                                      item.product.alpha > 0.5))
        seconds.append(time.perf_counter() - t0)
        yield item


def calibrated_on(clean_items) -> Peer:
    """The peer with its limits set on these clean edits."""
    return Peer.calibrated([measure(i.product.source_bytes(), i.edited_bytes, i.product.alpha > 0.5)
                            for i in clean_items])
