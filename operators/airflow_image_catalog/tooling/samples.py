"""Procedural product photos with ground-truth masks, for tests and demos.

Real catalog uploads are rarely on pure white: they have coloured, unevenly lit
backdrops and soft cast shadows. These samples reproduce that (deterministic
for a seed) and save the exact product mask beside each image, so the
segmentation can be scored by IoU instead of by eye.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

SS = 2  # supersampling factor for anti-aliased product edges

Color = tuple[int, int, int]
Shader = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (xx, yy) -> float RGB


@dataclass(frozen=True)
class _Sample:
    stem: str
    kind: str
    size: tuple[int, int]  # (width, height)
    ext: str
    bg: tuple[Color, Color]
    color: Color
    text: str | None = None
    accent: Color = (240, 240, 235)


_SAMPLES: tuple[_Sample, ...] = (
    _Sample(
        "box_tea", "box", (1600, 1200), ".jpg", ((214, 200, 178), (168, 150, 128)), (40, 110, 70), "GREEN TEA"
    ),
    _Sample(
        "bottle_amber",
        "bottle",
        (900, 1400),
        ".png",
        ((186, 204, 214), (120, 140, 160)),
        (150, 80, 20),
        "OLIVE OIL",
    ),
    _Sample("mug_white", "mug", (1200, 1200), ".jpg", ((150, 186, 176), (96, 128, 120)), (236, 234, 228)),
    _Sample("ball_red", "ball", (1000, 1000), ".png", ((200, 200, 196), (140, 142, 146)), (200, 40, 40)),
    _Sample("shoe_blue", "shoe", (1500, 1000), ".jpg", ((222, 214, 196), (180, 170, 150)), (40, 70, 150)),
    _Sample(
        "can_soda", "can", (800, 1100), ".jpg", ((238, 206, 196), (190, 150, 140)), (200, 30, 40), "COLA"
    ),
    _Sample(
        "jar_honey", "jar", (1100, 1100), ".png", ((196, 212, 230), (140, 160, 190)), (220, 150, 30), "HONEY"
    ),
    _Sample(
        "box_kraft",
        "box",
        (1000, 1400),
        ".jpg",
        ((176, 188, 204), (110, 122, 140)),
        (190, 150, 100),
        "ORGANIC",
    ),
    _Sample("bottle_green", "bottle", (700, 1100), ".jpg", ((234, 226, 206), (196, 182, 160)), (30, 90, 50)),
    _Sample("mug_yellow", "mug", (1400, 1000), ".png", ((110, 112, 124), (60, 62, 72)), (236, 190, 40)),
    _Sample("ball_teal", "ball", (900, 700), ".jpg", ((90, 70, 80), (40, 30, 36)), (30, 160, 160)),
    _Sample(
        "can_silver", "can", (1200, 1500), ".png", ((226, 190, 150), (170, 130, 96)), (150, 156, 166), "FIZZ"
    ),
)

REAL_PHOTOS = ("coffee", "rocket", "astronaut", "chelsea")
#: real product photos from the gallery (tooling/gallery.py): file name -> gallery image; truth masks beside.
#: (The gift box's cut-out PNG is published right by the engine, but the quality gate still judges it by
#: segmenting the source flattened on white, where its silver ribbon is lost, and quarantines it.)
REAL_PRODUCTS = {"real_gift_box_on_paper.jpg": "present_on_warm"}


class _Canvas:
    """Full-resolution float image plus the union of product alphas (the truth)."""

    def __init__(self, w: int, h: int, background: np.ndarray, *, probe: bool = False) -> None:
        self.w, self.h, self.probe = w, h, probe
        self.img = background
        self.alpha = np.zeros((h, w), np.float32)
        self.yy, self.xx = np.mgrid[0:h, 0:w].astype(np.float32)

    def part(self, draw: Callable[[ImageDraw.ImageDraw, float], None]) -> np.ndarray:
        """Rasterise a shape drawn at SSx and box-filter it down to an anti-aliased alpha."""
        layer = Image.new("L", (self.w * SS, self.h * SS), 0)
        draw(ImageDraw.Draw(layer), SS)
        return cv2.resize(
            np.asarray(layer, np.float32) / 255.0, (self.w, self.h), interpolation=cv2.INTER_AREA
        )

    def paint_over(self, alpha: np.ndarray, keep: float, add: float) -> None:
        """Detail inside the product (seams, laces): does not change the silhouette."""
        if not self.probe:
            a = alpha[..., None]
            self.img = self.img * (1 - a + a * keep) + add * a

    def paint(self, alpha: np.ndarray, colour: Shader) -> None:
        """Blend ``colour`` (evaluated only inside the part's bounding box, for speed) through ``alpha``."""
        self.alpha = np.maximum(self.alpha, alpha)
        if self.probe:
            return
        rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
        if rows.size == 0:
            return
        win = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        a = alpha[win][..., None]
        self.img[win] = self.img[win] * (1 - a) + colour(self.xx[win], self.yy[win]) * a


def _cylinder(cv: _Canvas, x0: float, x1: float, base: Color, gloss: float = 0.25) -> Shader:
    """Horizontal cylinder shading: light from the upper left, a specular stripe."""

    def shader(xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
        u = np.clip((xx - x0) / max(x1 - x0, 1), 0, 1)
        shade = 0.42 + 0.62 * np.clip(np.cos((u - 0.38) * np.pi * 0.95), 0, 1) ** 0.8
        spec = gloss * np.exp(-(((u - 0.27) / 0.05) ** 2))
        return np.clip(np.asarray(base, np.float32) * shade[..., None] + 255 * spec[..., None], 0, 255)

    return shader


def _face(cv: _Canvas, base: Color, k0: float, k1: float, y0: float, y1: float) -> Shader:
    """Flat face with a vertical light falloff from k0 (top) to k1 (bottom)."""

    def shader(xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
        v = np.clip((yy - y0) / max(y1 - y0, 1), 0, 1)
        return np.asarray(base, np.float32) * (k0 + (k1 - k0) * v)[..., None]

    return shader


def _sphere(cv: _Canvas, cx: float, cy: float, r: float, base: Color) -> Shader:
    """Lambert + Phong-ish highlight on a sphere lit from the upper left."""

    def shader(xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
        nx, ny = (xx - cx) / r, (yy - cy) / r
        nz = np.sqrt(np.clip(1 - nx**2 - ny**2, 0, 1))
        light = np.array([-0.45, -0.55, 0.70])
        light /= np.linalg.norm(light)
        lam = np.clip(nx * light[0] + ny * light[1] + nz * light[2], 0, 1)
        spec = lam**40 * 0.6
        shade = 0.25 + 0.85 * lam
        return np.clip(np.asarray(base, np.float32) * shade[..., None] + 255 * spec[..., None], 0, 255)

    return shader


def _scaled(points: list[tuple[float, float]], s: float) -> list[tuple[float, float]]:
    return [(x * s, y * s) for x, y in points]


def _draw_box(cv: _Canvas, sp: _Sample, rng: np.random.Generator) -> list[tuple[tuple[float, ...], str]]:
    w, h = cv.w, cv.h
    m = min(w, h)
    fw, fh = m * rng.uniform(0.36, 0.42), m * rng.uniform(0.46, 0.54)
    d = fw * 0.32
    x0, y0 = w / 2 - (fw + d) / 2, h / 2 - (fh - d * 0.5) / 2 + d * 0.2
    front = [(x0, y0), (x0 + fw, y0), (x0 + fw, y0 + fh), (x0, y0 + fh)]
    top = [(x0, y0), (x0 + d, y0 - d * 0.55), (x0 + fw + d, y0 - d * 0.55), (x0 + fw, y0)]
    side = [
        (x0 + fw, y0),
        (x0 + fw + d, y0 - d * 0.55),
        (x0 + fw + d, y0 + fh - d * 0.55),
        (x0 + fw, y0 + fh),
    ]
    cv.paint(
        cv.part(lambda dr, s: dr.polygon(_scaled(front, s), fill=255)),
        _face(cv, sp.color, 1.0, 0.85, y0, y0 + fh),
    )
    cv.paint(
        cv.part(lambda dr, s: dr.polygon(_scaled(top, s), fill=255)),
        _face(cv, sp.color, 1.25, 1.15, y0 - d, y0),
    )
    cv.paint(
        cv.part(lambda dr, s: dr.polygon(_scaled(side, s), fill=255)),
        _face(cv, sp.color, 0.7, 0.55, y0, y0 + fh),
    )
    lx0, lx1, ly0, ly1 = x0 + fw * 0.12, x0 + fw * 0.88, y0 + fh * 0.32, y0 + fh * 0.62
    cv.paint(
        cv.part(lambda dr, s: dr.rectangle((lx0 * s, ly0 * s, lx1 * s, ly1 * s), fill=255)),
        _face(cv, sp.accent, 1.0, 0.9, ly0, ly1),
    )
    return [((lx0, ly0, lx1, ly1), sp.text or "")]


def _draw_bottle(cv: _Canvas, sp: _Sample, rng: np.random.Generator) -> list[tuple[tuple[float, ...], str]]:
    w, h = cv.w, cv.h
    bw = min(w * 0.36, h * 0.24) * rng.uniform(0.9, 1.05)
    bh = h * 0.42
    cx = w / 2 + rng.uniform(-0.04, 0.04) * w
    by1 = h * 0.82
    by0 = by1 - bh
    nw = bw * 0.34
    ny0 = by0 - h * 0.17
    x0, x1 = cx - bw / 2, cx + bw / 2

    def body(dr: ImageDraw.ImageDraw, s: float) -> None:
        dr.rounded_rectangle((x0 * s, by0 * s, x1 * s, by1 * s), radius=bw * 0.12 * s, fill=255)
        dr.ellipse((x0 * s, (by0 - bw * 0.35) * s, x1 * s, (by0 + bw * 0.35) * s), fill=255)
        dr.rectangle(((cx - nw / 2) * s, ny0 * s, (cx + nw / 2) * s, by0 * s), fill=255)

    cv.paint(cv.part(body), _cylinder(cv, x0, x1, sp.color, gloss=0.35))
    cap_y0 = ny0 - h * 0.055
    cw = nw * 1.15
    cv.paint(
        cv.part(
            lambda dr, s: dr.rounded_rectangle(
                ((cx - cw / 2) * s, cap_y0 * s, (cx + cw / 2) * s, (ny0 + 4) * s), radius=5 * s, fill=255
            )
        ),
        _cylinder(cv, cx - cw / 2, cx + cw / 2, (30, 30, 34), gloss=0.15),
    )
    if not sp.text:
        return []
    ly0, ly1 = by0 + bh * 0.28, by0 + bh * 0.68
    cv.paint(
        cv.part(lambda dr, s: dr.rectangle((x0 * s, ly0 * s, x1 * s, ly1 * s), fill=255)),
        _cylinder(cv, x0, x1, sp.accent, gloss=0.1),
    )
    return [((x0 + bw * 0.1, ly0, x1 - bw * 0.1, ly1), sp.text)]


def _draw_mug(cv: _Canvas, sp: _Sample, rng: np.random.Generator) -> list[tuple[tuple[float, ...], str]]:
    w, h = cv.w, cv.h
    m = min(w, h)
    mw, mh = m * rng.uniform(0.36, 0.42), m * rng.uniform(0.40, 0.46)
    x0 = w / 2 - mw * 0.62
    y0 = h / 2 - mh * 0.45
    x1, y1 = x0 + mw, y0 + mh
    t = mw * 0.11
    hx0, hy0, hx1, hy1 = x1 - mw * 0.12, y0 + mh * 0.18, x1 + mw * 0.36, y0 + mh * 0.72
    cv.paint(
        cv.part(
            lambda dr, s: dr.ellipse((hx0 * s, hy0 * s, hx1 * s, hy1 * s), outline=255, width=int(t * s))
        ),
        _face(cv, sp.color, 0.85, 0.6, hy0, hy1),
    )
    eh = mw * 0.16

    def body(dr: ImageDraw.ImageDraw, s: float) -> None:
        dr.rounded_rectangle((x0 * s, y0 * s, x1 * s, y1 * s), radius=mw * 0.08 * s, fill=255)
        dr.ellipse((x0 * s, (y0 - eh / 2) * s, x1 * s, (y0 + eh / 2) * s), fill=255)

    cv.paint(cv.part(body), _cylinder(cv, x0, x1, sp.color, gloss=0.3))
    inner = (x0 + t * 0.5, y0 - eh / 2 + t * 0.4, x1 - t * 0.5, y0 + eh / 2 - t * 0.4)
    cv.paint(
        cv.part(lambda dr, s: dr.ellipse(tuple(v * s for v in inner), fill=255)),
        _face(cv, sp.color, 0.45, 0.7, inner[1], inner[3]),
    )
    return []


def _draw_ball(cv: _Canvas, sp: _Sample, rng: np.random.Generator) -> list[tuple[tuple[float, ...], str]]:
    r = min(cv.w, cv.h) * rng.uniform(0.24, 0.3)
    cx, cy = cv.w / 2 + rng.uniform(-0.05, 0.05) * cv.w, cv.h / 2
    cv.paint(
        cv.part(lambda dr, s: dr.ellipse(((cx - r) * s, (cy - r) * s, (cx + r) * s, (cy + r) * s), fill=255)),
        _sphere(cv, cx, cy, r, sp.color),
    )
    seam = cv.part(
        lambda dr, s: dr.arc(
            ((cx - r * 0.7) * s, (cy - r * 1.4) * s, (cx + r * 1.6) * s, (cy + r * 0.95) * s),
            120,
            250,
            fill=255,
            width=int(r * 0.05 * s),
        )
    )
    seam *= cv.alpha  # stay inside the ball
    cv.paint_over(seam, 0.45, 0.0)
    return []


def _draw_shoe(cv: _Canvas, sp: _Sample, rng: np.random.Generator) -> list[tuple[tuple[float, ...], str]]:
    w, h = cv.w, cv.h
    L = w * rng.uniform(0.52, 0.58)
    x0, yb = w / 2 - L / 2, h * 0.68
    H = L * 0.42
    upper = [
        (x0 + L * 0.02, yb - H * 0.18),
        (x0 + L * 0.05, yb - H * 0.55),
        (x0 + L * 0.12, yb - H * 0.95),
        (x0 + L * 0.30, yb - H * 1.0),
        (x0 + L * 0.38, yb - H * 0.72),
        (x0 + L * 0.62, yb - H * 0.55),
        (x0 + L * 0.85, yb - H * 0.38),
        (x0 + L * 0.99, yb - H * 0.18),
        (x0 + L, yb - H * 0.05),
        (x0, yb - H * 0.05),
    ]
    cv.paint(
        cv.part(lambda dr, s: dr.polygon(_scaled(upper, s), fill=255)),
        _face(cv, sp.color, 1.15, 0.7, yb - H, yb),
    )
    sole_h = H * 0.14
    cv.paint(
        cv.part(
            lambda dr, s: dr.rounded_rectangle(
                ((x0 - L * 0.01) * s, (yb - sole_h) * s, (x0 + L * 1.01) * s, yb * s),
                radius=sole_h * 0.45 * s,
                fill=255,
            )
        ),
        _face(cv, (236, 232, 224), 1.0, 0.8, yb - sole_h, yb),
    )
    lace = cv.part(
        lambda dr, s: [
            dr.line(
                (
                    (x0 + L * (0.36 + 0.05 * i)) * s,
                    (yb - H * (0.72 - 0.04 * i)) * s,
                    (x0 + L * (0.42 + 0.05 * i)) * s,
                    (yb - H * (0.56 - 0.04 * i)) * s,
                ),
                fill=255,
                width=int(6 * s),
            )
            for i in range(4)
        ]
    )
    cv.paint_over(lace, 0.0, 245.0)
    return []


def _draw_can(cv: _Canvas, sp: _Sample, rng: np.random.Generator) -> list[tuple[tuple[float, ...], str]]:
    w, h = cv.w, cv.h
    cw = min(w * 0.42, h * 0.3) * rng.uniform(0.95, 1.05)
    ch = cw * 1.8
    cx, y0 = w / 2, h / 2 - ch / 2
    x0, x1, y1 = cx - cw / 2, cx + cw / 2, y0 + ch
    eh = cw * 0.2

    def body(dr: ImageDraw.ImageDraw, s: float) -> None:
        dr.rectangle((x0 * s, y0 * s, x1 * s, y1 * s), fill=255)
        dr.ellipse((x0 * s, (y1 - eh / 2) * s, x1 * s, (y1 + eh / 2) * s), fill=255)

    cv.paint(cv.part(body), _cylinder(cv, x0, x1, sp.color, gloss=0.45))
    cv.paint(
        cv.part(lambda dr, s: dr.ellipse((x0 * s, (y0 - eh / 2) * s, x1 * s, (y0 + eh / 2) * s), fill=255)),
        _face(cv, (196, 198, 204), 1.0, 0.8, y0 - eh / 2, y0 + eh / 2),
    )
    return [((x0 + cw * 0.12, y0 + ch * 0.35, x1 - cw * 0.12, y0 + ch * 0.6), sp.text or "")]


def _draw_jar(cv: _Canvas, sp: _Sample, rng: np.random.Generator) -> list[tuple[tuple[float, ...], str]]:
    w, h = cv.w, cv.h
    jw = min(w, h) * rng.uniform(0.4, 0.46)
    jh = jw * 1.05
    cx, y0 = w / 2, h / 2 - jh * 0.35
    x0, x1, y1 = cx - jw / 2, cx + jw / 2, y0 + jh
    cv.paint(
        cv.part(
            lambda dr, s: dr.rounded_rectangle(
                (x0 * s, y0 * s, x1 * s, y1 * s), radius=jw * 0.18 * s, fill=255
            )
        ),
        _cylinder(cv, x0, x1, sp.color, gloss=0.4),
    )
    lw, lh = jw * 0.86, jh * 0.2
    cv.paint(
        cv.part(
            lambda dr, s: dr.rounded_rectangle(
                ((cx - lw / 2) * s, (y0 - lh * 0.85) * s, (cx + lw / 2) * s, (y0 + 4) * s),
                radius=lh * 0.2 * s,
                fill=255,
            )
        ),
        _cylinder(cv, cx - lw / 2, cx + lw / 2, (70, 40, 30), gloss=0.2),
    )
    ly0, ly1 = y0 + jh * 0.3, y0 + jh * 0.68
    cv.paint(
        cv.part(lambda dr, s: dr.rectangle((x0 * s, ly0 * s, x1 * s, ly1 * s), fill=255)),
        _cylinder(cv, x0, x1, sp.accent, gloss=0.1),
    )
    return [((x0 + jw * 0.12, ly0, x1 - jw * 0.12, ly1), sp.text or "")]


_DRAWERS = {
    "box": _draw_box,
    "bottle": _draw_bottle,
    "mug": _draw_mug,
    "ball": _draw_ball,
    "shoe": _draw_shoe,
    "can": _draw_can,
    "jar": _draw_jar,
}


def _smooth_noise(rng: np.random.Generator, w: int, h: int, cells: int) -> np.ndarray:
    small = rng.standard_normal((cells, cells)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _background(sp: _Sample, rng: np.random.Generator) -> np.ndarray:
    """Two-colour gradient at a random angle, vignetting, a light hot-spot and paper texture."""
    w, h = sp.size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    t = ((xx / w - 0.5) * np.cos(ang) + (yy / h - 0.5) * np.sin(ang)) + 0.5
    t = np.clip(t, 0, 1)[..., None]
    c0, c1 = (np.asarray(c, np.float32) for c in sp.bg)
    img = c0 * (1 - t) + c1 * t
    r2 = ((xx / w - 0.5) ** 2 + (yy / h - 0.5) ** 2) * 2
    vignette = 1 - rng.uniform(0.12, 0.25) * r2
    sx, sy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.1, 0.5) * h
    spot = 1 + rng.uniform(0.05, 0.12) * np.exp(
        -(((xx - sx) ** 2 + (yy - sy) ** 2) / (2 * (0.35 * max(w, h)) ** 2))
    )
    img = img * (vignette * spot)[..., None]
    img += 4.0 * _smooth_noise(rng, w, h, 24)[..., None]
    return img


def _shadow(alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Soft cast shadow: the silhouette shifted down-right and blurred, plus a contact shadow."""
    h, w = alpha.shape
    m = min(w, h)
    dx, dy = rng.uniform(0.015, 0.05) * m, rng.uniform(0.01, 0.03) * m
    shift = np.float32([[1, 0, dx], [0, 1, dy]])
    cast = cv2.warpAffine(alpha, shift, (w, h))
    sigma = rng.uniform(0.012, 0.025) * m
    cast = cv2.GaussianBlur(cast, (0, 0), sigma) * rng.uniform(0.3, 0.45)
    ys = np.flatnonzero(alpha.max(axis=1) > 0.5)
    xs = np.flatnonzero(alpha.max(axis=0) > 0.5)
    contact = np.zeros_like(alpha)
    cv2.ellipse(
        contact,
        (int(xs.mean()), int(ys[-1])),
        (int((xs[-1] - xs[0]) * 0.5), int(m * 0.02)),
        0,
        0,
        360,
        1.0,
        -1,
    )
    contact = cv2.GaussianBlur(contact, (0, 0), m * 0.012) * 0.35
    return np.clip(1 - cast - contact, 0.3, 1)


def render_sample(sp: _Sample, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Render one sample: (RGB uint8 image, bool truth mask)."""
    image, alpha, _ = render_sample_layers(sp, seed)
    return image, alpha >= 0.5


def render_sample_layers(sp: _Sample, seed: int) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int, int, int]]]:
    """Render one sample: (RGB uint8 image, float product coverage 0..1, label text boxes (x0, y0, x1, y1))."""
    rng = np.random.default_rng([seed, sum(map(ord, sp.stem))])
    w, h = sp.size
    bg = _background(sp, rng)
    cv = _Canvas(w, h, bg)
    # first pass only to learn the silhouette for the shadow, then paint on the shadowed background
    probe = _Canvas(w, h, bg, probe=True)
    _DRAWERS[sp.kind](probe, sp, np.random.default_rng([seed, 1, sum(map(ord, sp.stem))]))
    cv.img = bg * _shadow(probe.alpha, rng)[..., None]
    labels = _DRAWERS[sp.kind](cv, sp, np.random.default_rng([seed, 1, sum(map(ord, sp.stem))]))
    cv.img += rng.normal(0, 2.0, cv.img.shape).astype(np.float32)
    img = Image.fromarray(np.clip(np.rint(cv.img), 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    boxes = []
    for (x0, y0, x1, y1), text in labels:
        if not text:
            continue
        size = int(max(10, min((y1 - y0) * 0.45, (x1 - x0) / max(len(text), 1) * 1.6)))
        font = ImageFont.load_default(size=size)
        anchor = ((x0 + x1) / 2, (y0 + y1) / 2)
        draw.text(anchor, text, fill=(30, 30, 30), font=font, anchor="mm")
        boxes.append(tuple(int(v) for v in draw.textbbox(anchor, text, font=font, anchor="mm")))
    return np.asarray(img), cv.alpha, boxes


def _encode(image: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    return buf.getvalue()


def _write_if_changed(path: Path, data: bytes) -> None:
    if path.exists() and path.read_bytes() == data:
        return
    path.write_bytes(data)


def sample_specs() -> tuple[_Sample, ...]:
    """The procedural sample definitions (stem, kind, size, ...)."""
    return _SAMPLES


def make_samples(
    dest: Path, truth_dir: Path, *, seed: int = 7, with_broken: bool = False, limit: int | None = None
) -> list[Path]:
    """Write procedural product photos (+ truth masks), real product photos (+ truth masks) and a few real
    scenes; return image paths.

    ``limit`` renders only the first N procedural samples (quick smoke runs).
    """
    dest, truth_dir = Path(dest), Path(truth_dir)
    dest.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for sp in _SAMPLES[:limit]:
        image, truth = render_sample(sp, seed)
        path = dest / f"{sp.stem}{sp.ext}"
        _write_if_changed(path, _encode(image, "JPEG" if sp.ext == ".jpg" else "PNG"))
        _write_if_changed(truth_dir / f"{sp.stem}.png", _encode(truth.astype(np.uint8) * 255, "PNG"))
        written.append(path)
    from airflow_image_catalog.tooling.gallery import by_name

    for file_name, gallery_name in REAL_PRODUCTS.items():
        item = by_name(gallery_name)
        path = dest / file_name
        _write_if_changed(path, item.data)
        _write_if_changed(truth_dir / f"{path.stem}.png", _encode(item.truth.astype(np.uint8) * 255, "PNG"))
        written.append(path)
    from skimage import data as skdata  # optional heavy import, only needed here

    for name in REAL_PHOTOS:
        arr = getattr(skdata, name)()
        if arr.ndim == 2:
            arr = np.stack([arr] * 3, axis=-1)
        path = dest / f"photo_{name}.jpg"
        _write_if_changed(path, _encode(np.ascontiguousarray(arr[..., :3]), "JPEG"))
        written.append(path)
    if with_broken:
        full = _encode(render_sample(_SAMPLES[0], seed)[0], "JPEG")
        path = dest / "broken_upload.jpg"
        _write_if_changed(path, full[: len(full) // 2])
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write procedural product photos and truth masks.")
    parser.add_argument("dest", type=Path)
    parser.add_argument("--truth-dir", type=Path, default=None)
    parser.add_argument("--with-broken", action="store_true")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--limit", type=int, default=None, help="only the first N procedural samples")
    args = parser.parse_args(argv)
    truth = args.truth_dir or args.dest.parent / "samples_truth"
    paths = make_samples(args.dest, truth, seed=args.seed, with_broken=args.with_broken, limit=args.limit)
    present = sum(1 for p in args.dest.iterdir() if p.is_file())
    print(f"{present} files in {args.dest} ({len(paths)} written or up to date; truth masks in {truth})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def product_png(width: int = 96, height: int = 96, color: tuple[int, int, int] = (200, 40, 40), *,
                format: str = "PNG", texture: bool = False) -> bytes:
    """A small product shot: a coloured box on a plain white backdrop.

    ``texture`` shades the box with a seeded smooth pattern: a flat box's perceptual hash is
    mostly noise (its low DCT terms vanish), a textured one's is stable, as a photo's is.
    """
    import numpy as np
    from PIL import Image

    pixels = np.full((height, width, 3), 255, np.uint8)
    y0, y1, x0, x1 = height // 5, height * 4 // 5 + 1, width // 4, width * 3 // 4 + 1
    light = np.ones((y1 - y0, x1 - x0, 1), np.float32)
    if texture:
        import cv2

        noise = np.random.default_rng(7).random((y1 - y0, x1 - x0)).astype(np.float32)
        smooth = cv2.GaussianBlur(noise, (0, 0), max(width, height) / 32)
        light = (0.5 + 0.5 * (smooth - smooth.min()) / (np.ptp(smooth) + 1e-6))[..., None]
    pixels[y0:y1, x0:x1] = np.clip(np.asarray(color, np.float32) * light + 0.5, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format)
    return buf.getvalue()
