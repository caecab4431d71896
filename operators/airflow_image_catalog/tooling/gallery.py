"""A gallery of real photos with known product masks, for the engine's tests, its bench and the demo.

Nothing is downloaded: every picture ships inside an installed wheel.

- matplotlib's ``mpl-data/sample_data``: ``Minduka_Present_Blue_Pack.png`` (a gift box delivered as a
  transparent PNG, the way catalogs receive cut-out products: a silver ribbon, a soft drop shadow in its
  alpha), ``logo2.png`` (the matplotlib logo with alpha: thin letters, an i's dot, a white disc) and
  ``grace_hopper.jpg`` (a portrait: a scene).
- scikit-image's ``skimage/data``: ``logo.png`` (opaque on white, its disc touching all four edges),
  ``horse.png`` (a silhouette on white), ``camera.png`` (its sky, a real plain backdrop), and the scenes
  ``coffee.png``, ``astronaut.png``, ``chelsea.png``, ``rocket.jpg``.

A cut-out's alpha is its truth; composited on plain backdrops it becomes an opaque photo whose truth is
that alpha (at least half opaque) less the drop shadow painted into it. scikit-image's logo is scored against its disc (the convex hull of
its ink, which the white S inside it does not change), the horse against its dark pixels.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

#: what the engine must do with a gallery image
CUTOUT, PLAIN, SCENE = "cutout", "plain", "scene"


@dataclass(frozen=True)
class GalleryImage:
    name: str
    data: bytes  # the file as a user would upload it
    kind: str  # CUTOUT (alpha is the truth), PLAIN (plain backdrop, truth known) or SCENE (to be refused)
    truth: np.ndarray | None  # bool product mask; None for scenes
    edges: int = 0  # how many frame edges the product touches
    source: str = ""  # where the picture comes from

    @property
    def extension(self) -> str:
        return "png" if self.data[:4] == b"\x89PNG" else "jpg"


def matplotlib_sample(name: str) -> bytes:
    """A file from matplotlib's bundled sample data (read without importing matplotlib itself)."""
    import importlib.util

    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("matplotlib is not installed (pip install matplotlib): its sample data is needed")
    return (Path(spec.submodule_search_locations[0]) / "mpl-data" / "sample_data" / name).read_bytes()


def skimage_sample(name: str) -> bytes:
    """A file from scikit-image's bundled data folder (the files its wheel ships, no fetching)."""
    import importlib.util

    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("scikit-image is not installed: its bundled data is needed")
    return (Path(spec.submodule_search_locations[0]) / "data" / name).read_bytes()


def _rgba(data: bytes) -> np.ndarray:
    """float32 straight RGBA 0..1."""
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGBA"), np.float32) / 255.0


def _rgb(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def scale_cutout(rgba: np.ndarray, factor: float) -> np.ndarray:
    """Resize a float RGBA cut-out premultiplied (no dark fringe from the colours under transparency)."""
    h, w = rgba.shape[:2]
    premultiplied = np.dstack([rgba[..., :3] * rgba[..., 3:], rgba[..., 3]])
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    out = np.clip(cv2.resize(premultiplied, size, interpolation=interp), 0.0, 1.0)
    alpha = out[..., 3:]
    colour = np.where(alpha > 1e-4, out[..., :3] / np.maximum(alpha, 1e-4), 0.0)
    return np.dstack([np.clip(colour, 0.0, 1.0), alpha])


def crop_to_visible(rgba: np.ndarray, sides: str = "tblr") -> np.ndarray:
    """Crop the cut-out's transparent margin on the given sides (t, b, l, r): the product then touches them."""
    visible = rgba[..., 3] > 0
    rows, cols = np.flatnonzero(visible.any(axis=1)), np.flatnonzero(visible.any(axis=0))
    y0 = rows[0] if "t" in sides else 0
    y1 = rows[-1] + 1 if "b" in sides else rgba.shape[0]
    x0 = cols[0] if "l" in sides else 0
    x1 = cols[-1] + 1 if "r" in sides else rgba.shape[1]
    return rgba[y0:y1, x0:x1]


def place(product: np.ndarray, backdrop: np.ndarray, x: int, y: int) -> tuple[np.ndarray, np.ndarray]:
    """Composite a float RGBA cut-out over a uint8 backdrop at (x, y), clipped by the frame.

    Returns (uint8 RGB photo, the product's truth in that frame: :func:`_product_of` the cut-out).
    """
    frame = backdrop.astype(np.float32) / 255.0
    height, width = frame.shape[:2]
    truth = np.zeros((height, width), bool)
    h, w = product.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + w), min(height, y + h)
    part = product[y0 - y : y1 - y, x0 - x : x1 - x]
    a = part[..., 3:]
    frame[y0:y1, x0:x1] = part[..., :3] * a + frame[y0:y1, x0:x1] * (1.0 - a)
    truth[y0:y1, x0:x1] = _product_of(part)
    return np.clip(np.rint(frame * 255.0), 0, 255).astype(np.uint8), truth


def studio_backdrop(width: int, height: int, top: tuple[int, int, int], bottom: tuple[int, int, int],
                    *, seed: int = 3) -> np.ndarray:
    """A paper sweep as studios light it: a vertical gradient, vignetting and sensor noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    t = (yy / height)[..., None]
    img = np.asarray(top, np.float32) * (1 - t) + np.asarray(bottom, np.float32) * t
    img *= (1 - 0.15 * ((xx / width - 0.5) ** 2 + (yy / height - 0.5) ** 2) * 2)[..., None]
    img += rng.normal(0, 2.0, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def sky_backdrop(width: int, height: int) -> np.ndarray:
    """A real plain backdrop: the cloudless sky of scikit-image's camera photo, enlarged."""
    sky = _rgb(skimage_sample("camera.png"))[0:110, 330:512]
    return cv2.resize(sky, (width, height), interpolation=cv2.INTER_CUBIC)


def _encode(image: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    mode = "RGBA" if image.shape[-1] == 4 else "RGB"
    Image.fromarray(image, mode).save(buf, format=fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    return buf.getvalue()


def _cutout_png(rgba: np.ndarray) -> bytes:
    return _encode(np.clip(np.rint(rgba * 255.0), 0, 255).astype(np.uint8), "PNG")


def _truth_of(rgba: np.ndarray) -> np.ndarray:
    return np.rint(rgba[..., 3] * 255.0) >= 128


def _product_of(rgba: np.ndarray) -> np.ndarray:
    """A cut-out's product without the drop shadow its artwork paints into the alpha (semi-transparent,
    near-black pixels): composited into a photo, that shadow is a shadow, not product."""
    shadow = (rgba[..., 3] < 0.999) & (rgba[..., :3].max(axis=-1) < 0.3)
    return _truth_of(rgba) & ~shadow


def _disc_of_ink(rgb: np.ndarray) -> np.ndarray:
    """The filled convex hull of every non-white pixel: scikit-image's logo is a disc."""
    ink = (rgb < 245).any(axis=-1).astype(np.uint8)
    contours, _ = cv2.findContours(ink, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    hull = cv2.convexHull(np.vstack(contours))
    disc = np.zeros_like(ink)
    cv2.fillPoly(disc, [hull], 1)
    return disc.astype(bool)


SCENES = (("grace_hopper", "matplotlib", "grace_hopper.jpg"), ("coffee", "skimage", "coffee.png"),
          ("astronaut", "skimage", "astronaut.png"), ("chelsea", "skimage", "chelsea.png"),
          ("rocket", "skimage", "rocket.jpg"))


@cache
def gallery() -> tuple[GalleryImage, ...]:
    """Every gallery image, built in memory (about a second)."""
    present_file = matplotlib_sample("Minduka_Present_Blue_Pack.png")
    logo_file = matplotlib_sample("logo2.png")
    present = scale_cutout(_rgba(present_file), 3.5)  # 448 px: a catalog-sized cut-out
    logo = scale_cutout(_rgba(logo_file), 1.5)
    mpl, ski = "matplotlib sample_data", "scikit-image data"
    items = [
        GalleryImage("present_cutout", present_file, CUTOUT, _truth_of(_rgba(present_file)), 0,
                     f"{mpl}/Minduka_Present_Blue_Pack.png as shipped"),
        GalleryImage("present_cutout_large", _cutout_png(present), CUTOUT, _truth_of(present), 0,
                     "the present enlarged 3.5x (premultiplied)"),
        GalleryImage("logo_cutout", logo_file, CUTOUT, _truth_of(_rgba(logo_file)), 0, f"{mpl}/logo2.png as shipped"),
    ]
    for sides, edges in (("b", 1), ("br", 2), ("tblr", 4)):
        cut = crop_to_visible(present, sides)
        items.append(GalleryImage(f"present_cutout_touching_{edges}", _cutout_png(cut), CUTOUT, _truth_of(cut),
                                  edges, f"the present cropped to touch {edges} edge(s)"))
    size = 640
    x = y = (size - present.shape[0]) // 2
    backdrops = {
        "white": (np.full((size, size, 3), 255, np.uint8), "pure white"),
        "grey": (studio_backdrop(size, size, (200, 200, 204), (150, 150, 156)), "grey studio sweep"),
        "warm": (studio_backdrop(size, size, (226, 214, 196), (180, 168, 150), seed=4), "warm paper sweep"),
        "sky": (sky_backdrop(size, size), "the sky of scikit-image's camera photo"),
    }
    for key, (backdrop, what) in backdrops.items():
        photo, truth = place(present, backdrop, x, y)
        items.append(GalleryImage(f"present_on_{key}", _encode(photo, "JPEG"), PLAIN, truth, 0,
                                  f"the present composited on {what}"))
    grey = backdrops["grey"][0]
    for name, (px, py), edges in (("bottom", (x, size - 400), 1), ("corner", (size - 400, size - 400), 2)):
        photo, truth = place(present, grey, px, py)
        items.append(GalleryImage(f"present_touching_{edges}", _encode(photo, "JPEG"), PLAIN, truth, edges,
                                  f"the present on the grey sweep, cut by the frame at the {name}"))
    full = crop_to_visible(present)
    photo, truth = place(full, studio_backdrop(*full.shape[1::-1], (200, 200, 204), (150, 150, 156)), 0, 0)
    items.append(GalleryImage("present_touching_4", _encode(photo, "JPEG"), PLAIN, truth, 4,
                              "the present on the grey sweep, filling the frame"))
    lw, lh = logo.shape[1], logo.shape[0]
    photo, truth = place(logo, studio_backdrop(900, 300, (220, 220, 224), (190, 190, 196)),
                         (900 - lw) // 2, (300 - lh) // 2)
    items.append(GalleryImage("logo_on_grey", _encode(photo, "JPEG"), PLAIN, truth, 0,
                              "matplotlib's logo composited on a light grey sweep"))
    sk_logo = _rgb(skimage_sample("logo.png"))
    items.append(GalleryImage("skimage_logo", _encode(sk_logo, "PNG"), PLAIN, _disc_of_ink(sk_logo), 4,
                              f"{ski}/logo.png (opaque, its disc touches all four edges)"))
    horse = _rgb(skimage_sample("horse.png"))
    items.append(GalleryImage("horse", _encode(horse, "PNG"), PLAIN, horse.mean(axis=-1) < 128, 0,
                              f"{ski}/horse.png (a silhouette on white)"))
    for name, package, file in SCENES:
        data = matplotlib_sample(file) if package == "matplotlib" else skimage_sample(file)
        items.append(GalleryImage(f"scene_{name}", data, SCENE, None, 0, f"{package}: {file}"))
    coffee = cv2.resize(_rgb(skimage_sample("coffee.png")), (size, size), interpolation=cv2.INTER_AREA)
    photo, _ = place(present, coffee, x, y)
    items.append(GalleryImage("scene_present_on_coffee_table", _encode(photo, "JPEG"), SCENE, None, 0,
                              "the present composited on scikit-image's coffee photo (a real background)"))
    return tuple(items)


def by_name(name: str) -> GalleryImage:
    return next(item for item in gallery() if item.name == name)
