"""The quality gate's defect corpus: clean reframed edits and damaged copies, each with its masks.

Products come from two places: the procedural samples (``tooling.samples``, two seeds each;
their exact coverage is known) and real photos that scikit-image ships in its wheel, with
masks that are known too: the scikit-image logo's own alpha channel (a transparent product
shot, also cropped so it touches the frame, also flattened onto white), the horse silhouette
filled with real photographic texture (coffee, chelsea the cat), the retina fundus and the
colour wheel on their black grounds, and single coins cut from the coins photo.

A *clean* edit is what a faultless editor returns: the product cut out along its true mask and
centred on a white canvas at the recipe's fill (JPEG or PNG, a few qualities), and for the
procedural products also the local engine's own edit. Each *defect* kind damages the clean
edit in one way an editor really fails (see ``KINDS``); the defect's mask is the set of pixels
that differ from the clean edit. Products are split into a tuning half and a held-out half
(``split``), so thresholds chosen on one are judged on the other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

WHITE = (255, 255, 255)


@dataclass(frozen=True)
class Product:
    """A source photo and its truth: coverage (float 0..1) and, where known, the boxes of printed text."""

    name: str
    origin: str  # "procedural" | "real"
    image: np.ndarray  # RGB uint8
    alpha: np.ndarray  # float32 0..1 coverage of the product
    source_format: str  # how the source upload is encoded: "jpeg" | "png" (png keeps the alpha)
    transparent: bool = False  # the upload carries the alpha channel
    text_boxes: tuple[tuple[int, int, int, int], ...] = ()

    def source_bytes(self) -> bytes:
        import io

        from PIL import Image

        buf = io.BytesIO()
        if self.transparent:
            rgba = np.dstack([self.image, np.clip(self.alpha * 255 + 0.5, 0, 255).astype(np.uint8)])
            Image.fromarray(rgba, "RGBA").save(buf, "PNG")
        elif self.source_format == "png":
            Image.fromarray(self.image).save(buf, "PNG")
        else:
            Image.fromarray(self.image).save(buf, "JPEG", quality=92)
        return buf.getvalue()


@dataclass
class Item:
    """One corpus image: the source, the edit's bytes, what it is and where the damage is."""

    product: Product
    kind: str  # "clean" or a defect kind
    variant: str
    edited_bytes: bytes
    defect_mask: np.ndarray | None = None  # canvas pixels the defect changed
    expected: tuple[str, ...] = ()  # reason categories that name this defect
    meta: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.product.name}/{self.kind}/{self.variant}"


# ---------------------------------------------------------------------------------------------
# products


def _soft(mask: np.ndarray, sigma: float = 0.7) -> np.ndarray:
    return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigma)


def _fit_on_backdrop(image: np.ndarray, alpha: np.ndarray, side: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Place a cut-out on a light, unevenly lit photo-studio backdrop with margins."""
    rng = np.random.default_rng(seed)
    h, w = alpha.shape
    scale = side * 0.62 / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    img = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    a = cv2.resize(alpha, size, interpolation=cv2.INTER_LINEAR)
    bh, bw = int(side * 0.9), side
    yy, xx = np.mgrid[0:bh, 0:bw].astype(np.float32)
    c0 = np.array(rng.uniform(200, 235, 3), np.float32)
    c1 = c0 - rng.uniform(20, 45)
    t = np.clip(yy / bh * 0.7 + xx / bw * 0.3, 0, 1)[..., None]
    back = c0 * (1 - t) + c1 * t + rng.normal(0, 1.5, (bh, bw, 3)).astype(np.float32)
    y0, x0 = (bh - size[1]) // 2, (bw - size[0]) // 2
    canvas_alpha = np.zeros((bh, bw), np.float32)
    canvas_alpha[y0:y0 + size[1], x0:x0 + size[0]] = a
    fg = np.zeros_like(back)
    fg[y0:y0 + size[1], x0:x0 + size[0]] = img
    out = fg * canvas_alpha[..., None] + back * (1 - canvas_alpha[..., None])
    return np.clip(out + 0.5, 0, 255).astype(np.uint8), canvas_alpha


def _coin_outline(big: np.ndarray, coin: np.ndarray, backdrop: np.ndarray) -> np.ndarray:
    """A coin's outline on its 4x enlargement, where its rim crosses halfway from the backdrop to the coin.

    The outline found on the small photo (blurred, at a fixed level) runs a few pixels out on the dark
    backdrop; enlarged 4x, a clean cut along it keeps a dark ring that is the old backdrop, not the coin.
    """
    near = cv2.resize(coin.astype(np.uint8), (big.shape[1], big.shape[0]), interpolation=cv2.INTER_NEAREST)
    near = cv2.dilate(near, np.ones((9, 9), np.uint8)).astype(bool)
    smooth = cv2.GaussianBlur(big.astype(np.float32), (0, 0), 1.0)
    level = (float(np.median(backdrop)) + float(np.median(smooth[near]))) / 2
    inside = ((smooth > level) & near).astype(np.uint8)
    inside = cv2.morphologyEx(inside, cv2.MORPH_OPEN, np.ones((9, 9), np.uint8))
    contours, _ = cv2.findContours(inside, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    outline = np.zeros_like(inside)
    cv2.fillConvexPoly(outline, cv2.convexHull(max(contours, key=cv2.contourArea)), 1)  # a coin is a convex disc
    return outline.astype(bool)


@lru_cache(maxsize=1)
def real_products() -> tuple[Product, ...]:
    """Products made from real photos in scikit-image's bundled data, with known masks."""
    from skimage import data

    out = []
    # the scikit-image logo is a disc on white (its alpha channel is opaque everywhere): the disc, its
    # white S-stroke inside included, cut out along its outline is a transparent product shot with a
    # white part, like a gift box's white ribbon
    logo = data.logo()
    rgb = logo[..., :3].copy()
    ink = (np.abs(rgb.astype(np.int16) - 255).max(axis=-1) > 24).astype(np.uint8)
    disc = np.zeros_like(ink)
    cv2.fillConvexPoly(disc, cv2.convexHull(cv2.findNonZero(ink)), 1)  # the disc is convex
    alpha = _soft(disc.astype(bool), 0.8)
    out.append(Product("logo_transparent", "real", rgb, alpha, "png", transparent=True))
    # tight crop: the logo touches the frame on every side (the case the engine clips flat)
    ys, xs = np.nonzero(alpha > 0.5)
    y0, y1, x0, x1 = ys.min() + 6, ys.max() - 6, xs.min() + 6, xs.max() - 6
    out.append(Product("logo_touching_frame", "real", rgb[y0:y1, x0:x1].copy(), alpha[y0:y1, x0:x1].copy(), "png",
                       transparent=True))
    flat = np.clip(rgb * alpha[..., None] + 255 * (1 - alpha[..., None]) + 0.5, 0, 255).astype(np.uint8)
    out.append(Product("logo_on_white", "real", flat[y0:y1, x0:x1].copy(), alpha[y0:y1, x0:x1].copy(), "jpeg"))
    horse = data.horse() == 0  # the silhouette is black on white
    for i, (name, photo) in enumerate((("coffee", data.coffee()), ("chelsea", data.chelsea()))):
        texture = cv2.resize(photo, (horse.shape[1], horse.shape[0]), interpolation=cv2.INTER_CUBIC)
        a = _soft(horse)
        if i == 0:
            out.append(Product(f"horse_{name}_transparent", "real", texture, a, "png", transparent=True))
        else:
            img, a2 = _fit_on_backdrop(texture, a, 900, seed=5)
            out.append(Product(f"horse_{name}", "real", img, a2, "jpeg"))
    for name in ("retina", "colorwheel"):
        img = getattr(data, name)()
        mask = cv2.GaussianBlur(img.max(axis=-1), (0, 0), 2) > 25
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
        mask = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        out.append(Product(name, "real", img, _soft(mask), "jpeg"))
    coins = data.coins()
    mask = cv2.GaussianBlur(coins, (0, 0), 1.5) > 105
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
    h_img, w_img = coins.shape
    round_coins = [i for i in np.argsort(-stats[1:, cv2.CC_STAT_AREA]) + 1
                   if 0.002 * coins.size < stats[i, cv2.CC_STAT_AREA] < 0.03 * coins.size
                   and 0.75 < stats[i, cv2.CC_STAT_WIDTH] / stats[i, cv2.CC_STAT_HEIGHT] < 1.33
                   and stats[i, 0] > 2 and stats[i, 1] > 2 and stats[i, 0] + stats[i, 2] < w_img - 2
                   and stats[i, 1] + stats[i, 3] < h_img - 2]
    for k, label in enumerate(round_coins[:2]):
        x, y, w, h = stats[label, :4]
        pad = max(w, h) // 4
        ys, xs = slice(max(0, y - pad), y + h + pad), slice(max(0, x - pad), x + w + pad)
        crop = coins[ys, xs].astype(np.float32)
        here, others = labels[ys, xs] == label, (labels[ys, xs] != label) & mask[ys, xs]
        # the neighbouring coins that reach into the crop are painted out with the backdrop around them
        backdrop = ~cv2.dilate((here | others).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        if others.any():
            crop[cv2.dilate(others.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)] = np.median(crop[backdrop])
        # a coin is a convex disc: the hull of its largest opened piece
        opened = cv2.morphologyEx(here.astype(np.uint8), cv2.MORPH_OPEN, np.ones((7, 7), np.uint8))
        contours, _ = cv2.findContours(opened, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        coin8 = np.zeros_like(opened)
        cv2.fillConvexPoly(coin8, cv2.convexHull(max(contours, key=cv2.contourArea)), 1)
        coin = coin8.astype(bool)
        grey = np.stack([np.clip(crop + 0.5, 0, 255).astype(np.uint8)] * 3, axis=-1)
        big_grey = cv2.resize(grey, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
        out.append(Product(f"coin_{k}", "real", big_grey, _soft(_coin_outline(big_grey[..., 0], coin, crop[backdrop]), 1.2),
                           "jpeg"))
    return tuple(out)


SEEDS = (7, 11)


@lru_cache(maxsize=32)
def procedural_product(stem: str, seed: int) -> Product:
    """One procedural sample (``tooling.samples``) rendered with ``seed``, as a corpus product."""
    from airflow_image_catalog.tooling.samples import render_sample_layers, sample_specs

    sp = next(s for s in sample_specs() if s.stem == stem)
    image, alpha, boxes = render_sample_layers(sp, seed)
    return Product(f"{stem}@{seed}", "procedural", image, alpha, "jpeg" if sp.ext == ".jpg" else "png",
                   text_boxes=tuple(boxes))


def procedural_products(seeds: tuple[int, ...] = SEEDS) -> tuple[Product, ...]:
    from airflow_image_catalog.tooling.samples import sample_specs

    return tuple(procedural_product(sp.stem, seed) for seed in seeds for sp in sample_specs())


def product_names() -> list[tuple[str, str]]:
    """(name, origin) of every corpus product, without rendering any."""
    from airflow_image_catalog.tooling.samples import sample_specs

    return ([(f"{sp.stem}@{seed}", "procedural") for seed in SEEDS for sp in sample_specs()]
            + [(p.name, "real") for p in real_products()])


def product(name: str) -> Product:
    if "@" in name:
        stem, seed = name.split("@")
        return procedural_product(stem, int(seed))
    return next(p for p in real_products() if p.name == name)


def family(name: str) -> str:
    """What makes two corpus products the same product: the sample's stem, the photo they come from."""
    return name.split("@")[0].split("_")[0] if not name.startswith("coin_") else name


#: the product held out whatever the hash says: the transparent shot and the logos touching the frame
#: that the issue cites as the engine's failures are judged on thresholds that never saw them
HELD_OUT_FAMILIES = ("logo",)


def split() -> dict[str, list[str]]:
    """Product names of the tuning and the held-out half, by product family (seeds and crops of one
    product never straddle the two). Each origin is halved on its own, in an order fixed by a hash
    of the family, so both halves have procedural and real products."""
    halves: dict[str, list[str]] = {"tuning": [], "held_out": []}
    names = product_names()
    for origin in ("procedural", "real"):
        families = sorted({family(n) for n, o in names if o == origin} - set(HELD_OUT_FAMILIES),
                          key=lambda f: hashlib.sha256(f.encode()).hexdigest())
        held = set(families[1::2]) | set(HELD_OUT_FAMILIES)
        for name, o in names:
            if o == origin:
                halves["held_out" if family(name) in held else "tuning"].append(name)
    return halves


# ---------------------------------------------------------------------------------------------
# the perfect edit and its damaged copies


@dataclass(frozen=True)
class Cutout:
    """The product cropped to its coverage: colour (float32) and alpha, plus text boxes in crop coords."""

    rgb: np.ndarray
    alpha: np.ndarray
    text_boxes: tuple[tuple[int, int, int, int], ...] = ()

    @property
    def extent(self) -> int:
        """Longest side of the product proper (coverage >= 0.5): what the canvas fill is measured on."""
        ys, xs = np.nonzero(self.alpha >= 0.5)
        return int(max(ys.max() - ys.min(), xs.max() - xs.min()) + 1) if len(ys) else max(self.alpha.shape)


def cutout(product: Product) -> Cutout:
    """The product along its true coverage; edge pixels keep the product's colour (a matte, not a blend)."""
    a = product.alpha
    ys, xs = np.nonzero(a > 0.02)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    rgb = product.image[y0:y1, x0:x1].astype(np.float32)
    alpha = a[y0:y1, x0:x1]
    if not product.transparent:
        # a matte: inner pixels' colours pulled outward over the blended rim
        inner = (alpha > 0.9).astype(np.uint8)
        if inner.any():
            spread = cv2.inpaint(np.clip(rgb, 0, 255).astype(np.uint8), (1 - inner) * (alpha > 0.02), 3,
                                 cv2.INPAINT_TELEA).astype(np.float32)
            rgb = np.where((alpha < 0.9)[..., None], spread, rgb)
    boxes = tuple((bx0 - x0, by0 - y0, bx1 - x0, by1 - y0) for bx0, by0, bx1, by1 in product.text_boxes)
    return Cutout(rgb, alpha.astype(np.float32), boxes)


def compose(cut: Cutout, side: int, *, fill: float = 0.85, canvas=WHITE, offset: tuple[float, float] = (0, 0),
            ) -> tuple[np.ndarray, np.ndarray]:
    """The cut-out centred on a side x side canvas, its longer side ``fill`` of the canvas: (RGB, alpha)."""
    h, w = cut.alpha.shape
    scale = fill * side / cut.extent
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    rgb = cv2.resize(cut.rgb, size, interpolation=interp)
    alpha = np.clip(cv2.resize(cut.alpha, size, interpolation=cv2.INTER_LINEAR), 0, 1)
    x0 = int(round((side - size[0]) / 2 + offset[0] * side))
    y0 = int(round((side - size[1]) / 2 + offset[1] * side))
    out = np.empty((side, side, 3), np.float32)
    out[:] = np.asarray(canvas, np.float32)
    a_full = np.zeros((side, side), np.float32)
    # paste with clipping at the canvas edges
    sy0, sx0 = max(0, -y0), max(0, -x0)
    dy0, dx0 = max(0, y0), max(0, x0)
    dy1, dx1 = min(side, y0 + size[1]), min(side, x0 + size[0])
    if dy1 > dy0 and dx1 > dx0:
        a = alpha[sy0:sy0 + dy1 - dy0, sx0:sx0 + dx1 - dx0, None]
        out[dy0:dy1, dx0:dx1] = rgb[sy0:sy0 + dy1 - dy0, sx0:sx0 + dx1 - dx0] * a + out[dy0:dy1, dx0:dx1] * (1 - a)
        a_full[dy0:dy1, dx0:dx1] = a[..., 0]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8), a_full


def encode(image: np.ndarray, fmt: str = "jpeg", quality: int = 92) -> bytes:
    from airflow_image_catalog.imaging.engine import encode_image

    return encode_image(image, format=fmt, quality=quality)


def _ellipse_mask(shape, centre, axes, angle=0.0) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    cv2.ellipse(m, (int(centre[0]), int(centre[1])), (max(1, int(axes[0])), max(1, int(axes[1]))), angle, 0, 360, 1,
                -1)
    return m.astype(bool)


def _text(image: np.ndarray, text: str, centre: tuple[int, int], height: int, colour, *, alpha: float = 1.0,
          angle: float = 0.0) -> np.ndarray:
    """Draw text (Pillow's default font at ``height`` px) centred at ``centre``, optionally translucent and rotated."""
    from PIL import Image, ImageDraw, ImageFont

    layer = Image.new("L", (image.shape[1], image.shape[0]), 0)
    ImageDraw.Draw(layer).text(centre, text, fill=255, font=ImageFont.load_default(size=height), anchor="mm")
    if angle:
        layer = layer.rotate(angle, center=centre, resample=Image.BILINEAR)
    a = np.asarray(layer, np.float32)[..., None] / 255 * alpha
    out = image.astype(np.float32) * (1 - a) + np.asarray(colour, np.float32) * a
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


# A defect kind: (category the gate must name, function (product, cut, side, rng) -> canvas or None)
Damage = Callable[[Product, Cutout, int, np.random.Generator], np.ndarray | None]


def _cut_edit(cut: Cutout, side: int, **kw) -> np.ndarray:
    return compose(cut, side, **kw)[0]


def grey_canvas(p, cut, side, rng):
    level = int(rng.integers(236, 253))
    return _cut_edit(cut, side, canvas=(level, level, level))


def noisy_canvas(p, cut, side, rng):
    img, a = compose(cut, side)
    noise = rng.integers(-3, 4, img.shape)
    bg = (a < 0.01)[..., None]
    return np.where(bg, np.clip(255 + noise, 0, 255), img).astype(np.uint8)


def halo(p, cut, side, rng):
    img, a = compose(cut, side)
    dist = cv2.distanceTransform((a < 0.5).astype(np.uint8), cv2.DIST_L2, 3)
    width = rng.uniform(0.006, 0.012) * side  # 12-24 px on a 2000 px canvas: a rim a shopper sees
    rim = (dist > 0) & (dist <= width)
    level = rng.uniform(228, 246)
    out = img.copy()
    out[rim] = np.clip(np.minimum(out[rim].astype(np.float32), level), 0, 255).astype(np.uint8)
    return out


def backdrop_left(p, cut, side, rng):
    """The cut went wide: a rim of the source's own backdrop (or a grey fringe for a transparent shot) stays."""
    h, w = cut.alpha.shape
    width = max(3, int(rng.uniform(0.02, 0.04) * max(h, w)))
    grown = cv2.dilate((cut.alpha > 0.05).astype(np.uint8), np.ones((2 * width + 1,) * 2, np.uint8)).astype(np.float32)
    pad = width + 2
    # the source around the crop: rebuild from the product image with the same crop grown by the pad
    a = p.alpha
    ys, xs = np.nonzero(a > 0.02)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    img = cv2.copyMakeBorder(p.image, pad, pad, pad, pad, cv2.BORDER_REPLICATE).astype(np.float32)
    region = img[y0:y1 + 2 * pad, x0:x1 + 2 * pad]
    if p.transparent:
        region = np.where((cv2.copyMakeBorder(a, pad, pad, pad, pad, cv2.BORDER_CONSTANT)[y0:y1 + 2 * pad,
                           x0:x1 + 2 * pad] > 0.5)[..., None], region, 200.0)
    grown = cv2.copyMakeBorder(grown, pad, pad, pad, pad, cv2.BORDER_CONSTANT)
    grown = cv2.dilate(grown, np.ones((2 * width + 1,) * 2, np.uint8))
    alpha = np.maximum(cv2.copyMakeBorder(cut.alpha, pad, pad, pad, pad, cv2.BORDER_CONSTANT), grown)
    wide = Cutout(np.where((cv2.copyMakeBorder(cut.alpha, pad, pad, pad, pad, cv2.BORDER_CONSTANT) > 0.5)[..., None],
                           cv2.copyMakeBorder(cut.rgb, pad, pad, pad, pad, cv2.BORDER_REPLICATE), region), alpha)
    return _cut_edit(wide, side, fill=0.85)


def shadow_kept(p, cut, side, rng):
    img, a = compose(cut, side)
    shadow = cv2.GaussianBlur(np.roll(a, int(0.03 * side), axis=0), (0, 0), 0.02 * side)
    dark = 1 - rng.uniform(0.08, 0.2) * shadow * (a < 0.5)
    return np.clip(img.astype(np.float32) * dark[..., None] + 0.5, 0, 255).astype(np.uint8)


def frame(p, cut, side, rng):
    img = _cut_edit(cut, side)
    t = max(2, int(rng.uniform(0.004, 0.012) * side))
    inset = int(rng.uniform(0.0, 0.02) * side)
    colour = (int(rng.integers(20, 200)),) * 3
    cv2.rectangle(img, (inset, inset), (side - 1 - inset, side - 1 - inset), colour, t)
    return img


def canvas_text(p, cut, side, rng):
    img = _cut_edit(cut, side, fill=0.8)
    text = ["SALE -50%", "FREE SHIPPING", "NEW", "BEST SELLER"][int(rng.integers(0, 4))]
    corner = [(0.2, 0.05), (0.8, 0.05), (0.2, 0.96), (0.8, 0.96)][int(rng.integers(0, 4))]
    return _text(img, text, (int(corner[0] * side), int(corner[1] * side)), int(0.04 * side),
                 (int(rng.integers(0, 120)), 20, 20))


def watermark(p, cut, side, rng):
    img = _cut_edit(cut, side)
    return _text(img, "SAMPLE", (side // 2, side // 2), int(0.12 * side), (255, 255, 255) if rng.random() < 0.5
                 else (60, 60, 60), alpha=float(rng.uniform(0.35, 0.5)), angle=float(rng.uniform(-12, 12)))


def badge(p, cut, side, rng):
    img = _cut_edit(cut, side)
    r = int(0.07 * side)
    cx, cy = int(side * rng.uniform(0.78, 0.88)), int(side * rng.uniform(0.1, 0.2))
    colour = [(220, 30, 40), (250, 200, 20), (30, 120, 220)][int(rng.integers(0, 3))]
    cv2.circle(img, (cx, cy), r, colour, -1, lineType=cv2.LINE_AA)
    return _text(img, "-20%", (cx, cy), int(r * 0.8), (255, 255, 255))


def _erase(cut: Cutout, mask: np.ndarray) -> Cutout:
    return Cutout(cut.rgb, np.where(mask, 0.0, cut.alpha).astype(np.float32), cut.text_boxes)


def part_missing(p, cut, side, rng):
    h, w = cut.alpha.shape
    ys, xs = np.nonzero(cut.alpha > 0.5)
    solid = cv2.copyMakeBorder((cut.alpha > 0.5).astype(np.uint8), 3, 3, 3, 3, cv2.BORDER_CONSTANT, value=0)
    edge = (solid > 0) & ~cv2.erode(solid, np.ones((5, 5), np.uint8)).astype(bool)
    ey, ex = np.nonzero(edge[3:-3, 3:-3])
    i = int(rng.integers(0, len(ey)))
    r = rng.uniform(0.14, 0.22) * max(h, w)
    return _cut_edit(_erase(cut, _ellipse_mask((h, w), (ex[i], ey[i]), (r, r * rng.uniform(0.6, 1.0)),
                                               rng.uniform(0, 180))), side)


def hole(p, cut, side, rng):
    h, w = cut.alpha.shape
    solid = cv2.copyMakeBorder((cut.alpha > 0.5).astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    inner = cv2.erode(solid, np.ones((3, 3), np.uint8), iterations=max(3, min(h, w) // 6))[1:-1, 1:-1]
    ys, xs = np.nonzero(inner)
    if len(ys) == 0:
        return None
    i = int(rng.integers(0, len(ys)))
    r = rng.uniform(0.06, 0.1) * min(h, w)
    return _cut_edit(_erase(cut, _ellipse_mask((h, w), (xs[i], ys[i]), (r, r * 0.7), rng.uniform(0, 180))), side)


def clipped_edges(p, cut, side, rng):
    """Clipped flat on every side: the product's extremities shaved off, then fitted to the canvas again."""
    h, w = cut.alpha.shape
    k = max(2, int(rng.uniform(0.04, 0.07) * max(h, w)))
    shaved = Cutout(cut.rgb[k:h - k, k:w - k], cut.alpha[k:h - k, k:w - k], ())
    return _cut_edit(shaved, side)


def cut_by_canvas(p, cut, side, rng):
    """The framing slid: 15-25 % of the product lies beyond one canvas edge."""
    dx, dy = [(1, 0), (-1, 0), (0, 1), (0, -1)][int(rng.integers(0, 4))]
    h, w = cut.alpha.shape
    fill = 0.85
    ext = fill * (w if dx else h) / max(h, w)  # the product's extent along the shift, as a share of the side
    shift = (1 - ext) / 2 + rng.uniform(0.15, 0.25) * ext
    return _cut_edit(cut, side, fill=fill, offset=(dx * shift, dy * shift))


def duplicated(p, cut, side, rng):
    h, w = cut.alpha.shape
    gap = max(4, w // 10)
    rgb = np.zeros((h, 2 * w + gap, 3), np.float32)
    alpha = np.zeros((h, 2 * w + gap), np.float32)
    rgb[:, :w], rgb[:, w + gap:] = cut.rgb, cut.rgb
    alpha[:, :w], alpha[:, w + gap:] = cut.alpha, cut.alpha
    return _cut_edit(Cutout(rgb, alpha), side)


def mirrored(p, cut, side, rng):
    return _cut_edit(Cutout(cut.rgb[:, ::-1].copy(), cut.alpha[:, ::-1].copy()), side)


def rotated(p, cut, side, rng):
    angle = float(rng.choice([90.0, -90.0, rng.uniform(12, 25), -rng.uniform(12, 25)]))
    h, w = cut.alpha.shape
    d = int(np.ceil(np.hypot(h, w)))
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    m[:, 2] += ((d - w) / 2, (d - h) / 2)
    rgb = cv2.warpAffine(cut.rgb, m, (d, d), flags=cv2.INTER_LINEAR)
    alpha = cv2.warpAffine(cut.alpha, m, (d, d), flags=cv2.INTER_LINEAR)
    ys, xs = np.nonzero(alpha > 0.02)
    crop = slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)
    return _cut_edit(Cutout(rgb[crop], alpha[crop]), side)


def stretched(p, cut, side, rng):
    h, w = cut.alpha.shape
    f = float(rng.choice([rng.uniform(1.15, 1.3), 1 / rng.uniform(1.15, 1.3)]))
    size = (max(1, round(w * f)), h)
    return _cut_edit(Cutout(cv2.resize(cut.rgb, size), cv2.resize(cut.alpha, size)), side)


def recoloured(p, cut, side, rng):
    hsv = cv2.cvtColor(np.clip(cut.rgb, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.int16)
    hsv[..., 0] = (hsv[..., 0] + int(rng.integers(18, 40))) % 180
    hsv[..., 1] = np.maximum(hsv[..., 1], 90)
    rgb = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    return _cut_edit(Cutout(rgb, cut.alpha), side)


def _source_px(cut: Cutout, side: int, fill: float = 0.85) -> float:
    """Canvas pixels per source pixel of the product: how far a faithful edit upscales it."""
    return fill * side / cut.extent


def resolution_loss(p, cut, side, rng):
    """The edit holds 1/2.5 of the source product's resolution (rendered small, then upscaled to the canvas)."""
    img = _cut_edit(cut, side)
    factor = 2.5 * _source_px(cut, side)
    small = cv2.resize(img, (max(8, round(side / factor)),) * 2, interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (side, side), interpolation=cv2.INTER_CUBIC)


def blurred(p, cut, side, rng):
    """The product came back soft: a Gaussian blur of 1.2-2 source pixels over it."""
    img, a = compose(cut, side)
    soft = cv2.GaussianBlur(img, (0, 0), rng.uniform(1.2, 2.0) * _source_px(cut, side))
    inside = cv2.dilate((a > 0.02).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    return np.where(inside[..., None], soft, img)


def tone_crushed(p, cut, side, rng):
    img, a = compose(cut, side)
    f = rng.uniform(0.45, 0.6)
    mean = img[a > 0.5].mean(axis=0)
    flat = (img.astype(np.float32) - mean) * f + mean
    return np.where((a > 0.02)[..., None], np.clip(flat + 0.5, 0, 255), img).astype(np.uint8)


def posterized(p, cut, side, rng):
    img, a = compose(cut, side)
    step = int(rng.choice([48, 64]))
    poster = (img // step) * step + step // 2
    return np.where((a > 0.5)[..., None], poster, img).astype(np.uint8)


def under_filled(p, cut, side, rng):
    return _cut_edit(cut, side, fill=float(rng.uniform(0.55, 0.7)))


def text_altered(p, cut, side, rng):
    """The label's printed text painted out or replaced (garbled lettering)."""
    if not cut.text_boxes:
        return None
    rgb = np.clip(cut.rgb, 0, 255).astype(np.uint8)
    for x0, y0, x1, y1 in cut.text_boxes:
        box = rgb[y0:y1, x0:x1]
        dark = (box.max(axis=-1) < 120).astype(np.uint8)
        dark = cv2.dilate(dark, np.ones((3, 3), np.uint8), iterations=2)
        rgb[y0:y1, x0:x1] = cv2.inpaint(box, dark, 5, cv2.INPAINT_TELEA)
        if rng.random() < 0.5:
            rgb = _text(rgb, "XQZ", ((x0 + x1) // 2, (y0 + y1) // 2), max(8, int((y1 - y0) * 0.8)), (30, 30, 30))
    return _cut_edit(Cutout(rgb.astype(np.float32), cut.alpha), side)


#: defect kind -> (reason categories that correctly name it, the damage)
KINDS: dict[str, tuple[tuple[str, ...], Damage]] = {
    "grey_canvas": (("background",), grey_canvas),
    "noisy_canvas": (("background",), noisy_canvas),
    "halo": (("background",), halo),
    "backdrop_left": (("background",), backdrop_left),
    "shadow_kept": (("background",), shadow_kept),
    "frame": (("overlay", "background"), frame),
    "canvas_text": (("overlay",), canvas_text),
    "watermark": (("overlay",), watermark),
    "badge": (("overlay",), badge),
    "part_missing": (("completeness",), part_missing),
    "hole": (("completeness",), hole),
    "clipped_edges": (("completeness",), clipped_edges),
    "cut_by_canvas": (("completeness",), cut_by_canvas),
    "duplicated": (("identity",), duplicated),
    "mirrored": (("identity",), mirrored),
    "rotated": (("identity",), rotated),
    "stretched": (("identity",), stretched),
    "recoloured": (("identity",), recoloured),
    "resolution_loss": (("detail",), resolution_loss),
    "blurred": (("detail",), blurred),
    "tone_crushed": (("detail",), tone_crushed),
    "posterized": (("detail",), posterized),
    "heavy_jpeg": (("detail",), None),  # type: ignore[dict-item]  # the clean canvas saved at quality 12
    "under_filled": (("framing",), under_filled),
    "text_altered": (("text",), text_altered),
}

#: a defect must change at least this share of the canvas by more than this many levels to count as one
VISIBLE_LEVELS, VISIBLE_SHARE = 6, 0.001
#: the kinds whose effect depends on the product's own content (a flat product has no detail to blur)
CONTENT_KINDS = ("blurred", "resolution_loss", "tone_crushed", "posterized")

#: clean variants: (name, fill, format, quality)
CLEAN_VARIANTS = (("q92", 0.85, "jpeg", 92), ("q95_fill90", 0.9, "jpeg", 95), ("png_fill87", 0.87, "png", 0))


def _seed(*parts: str) -> np.random.Generator:
    return np.random.default_rng(int(hashlib.sha256("/".join(parts).encode()).hexdigest()[:12], 16))


def engine_edit(product: Product, side: int) -> bytes:
    """The local engine's own marketplace edit of the source (white background, fit on the canvas)."""
    from airflow_image_catalog.imaging.engine import apply_op, decode_image

    source = decode_image(product.source_bytes())
    white = apply_op("white_background", source, {"shadow": False, "feather_px": 1})
    canvas = apply_op("fit_canvas", white, {"width": side, "height": side, "product_fill": 0.85})
    return encode(canvas, "jpeg", 92)


def items(products: list[Product] | tuple[Product, ...], side: int = 2000, *, kinds: tuple[str, ...] | None = None,
          engine: bool = True, clean: bool = True) -> Iterator[Item]:
    """Every clean variant (``clean``) and every applicable defect of ``kinds`` (default all) of each product
    (deterministic)."""
    for product in products:
        cut = cutout(product)
        clean_img = None
        for name, fill, fmt, quality in CLEAN_VARIANTS:
            img = _cut_edit(cut, side, fill=fill)
            if clean_img is None:
                clean_img = img
            if not clean:
                break  # the first variant is what the defects damage
            yield Item(product, "clean", name, encode(img, fmt, quality or 92))
        if clean and engine and product.origin == "procedural":
            yield Item(product, "clean", "engine", engine_edit(product, side))
        assert clean_img is not None
        for kind, (expected, damage) in KINDS.items():
            if kinds is not None and kind not in kinds:
                continue
            rng = _seed(product.name, kind)
            if kind == "heavy_jpeg":
                data = encode(clean_img, "jpeg", 12)
                img = clean_img
            else:
                img = damage(product, cut, side, rng)
                if img is None:
                    continue
                data = encode(img, "jpeg", 92)
            diff = np.abs(img.astype(np.int16) - clean_img.astype(np.int16)).max(axis=-1)
            if kind in CONTENT_KINDS and np.count_nonzero(diff > VISIBLE_LEVELS) < VISIBLE_SHARE * diff.size:
                continue  # the damage changed nothing a person could see (a blur of a product with no detail)
            yield Item(product, kind, "v1", data, diff > 2 if kind != "heavy_jpeg" else None, expected)
