"""The local engine on its gallery of real photos and on the procedural samples: IoU and cost, printed.

``python -m airflow_image_catalog.tooling.bench.engine [--sheet docs/engine-gallery.png]`` (``make
bench-engine``): for each gallery image the product-mask IoU of the segmentation alone and of the matte
the backdrop ops composite through, the seconds each takes, and what the engine refused; the same for
the procedural samples; and a contact sheet (source, mask against the truth, every shipped recipe's
published output) to look at.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

RECIPES = ("marketplace_white_square", "seasonal_background_swap", "color_match_reference",
           "campaign_style_look", "object_removal")
TILE = 180
#: the rows of the contact sheet in docs/: every kind of gallery image, not all of them
SHEET_ROWS = ["present_cutout_large", "logo_cutout", "present_cutout_touching_1", "present_cutout_touching_2",
              "present_cutout_touching_4", "present_on_warm", "present_on_grey", "present_on_white",
              "present_touching_4", "present_touching_2", "logo_on_grey", "skimage_logo", "horse",
              "scene_grace_hopper", "scene_present_on_coffee_table"]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def _timed(fn, *args):
    started = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - started


def _parts(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float, float]:
    """(GrabCut-only mask, with the parts its edges wall in, with the matted edge (what ships), seconds of
    each stage)."""
    from airflow_image_catalog.imaging.engine.subject import (
        _work_copy,
        close_by_edges,
        grabcut_small,
        refine_edge,
        upsample_mask,
    )

    small, scale = _work_copy(image)
    grabcut, seg_s = _timed(grabcut_small, small)
    closed, close_s = _timed(close_by_edges, small, grabcut)
    alpha, matte_s = _timed(refine_edge, small, closed)
    return (upsample_mask(image, grabcut, scale), upsample_mask(image, closed, scale),
            upsample_mask(image, alpha >= 0.5, scale), seg_s, close_s, matte_s)


def measure_gallery() -> list[dict]:
    """One row per gallery image: IoU before / after the matting and seconds of each, or the refusal."""
    from airflow_image_catalog.imaging.engine import NoSubjectError, decode_image, find_subject
    from airflow_image_catalog.tooling.gallery import gallery

    rows = []
    for item in gallery():
        image = decode_image(item.data, keep_alpha=True)
        row = {"name": item.name, "kind": item.kind, "size": f"{image.shape[1]}x{image.shape[0]}",
               "edges": item.edges}
        try:
            mask, row["find_s"] = _timed(find_subject, image)  # the refusals, and a cut-out's alpha
        except NoSubjectError as exc:
            row["refused"] = str(exc)
            rows.append(row)
            continue
        if image.shape[-1] == 4:
            score = _iou(mask, item.truth)
            row.update(seg_iou=score, close_iou=score, matte_iou=score, seg_s=0.0, close_s=0.0, matte_s=0.0)
        else:
            before, closed, after, row["seg_s"], row["close_s"], row["matte_s"] = _parts(image)
            row.update(seg_iou=_iou(before, item.truth), close_iou=_iou(closed, item.truth),
                       matte_iou=_iou(after, item.truth))
        rows.append(row)
    return rows


def measure_samples(seed: int = 7) -> dict:
    """Procedural samples: IoU min / mean before and after the matting, seconds per image of each."""
    from airflow_image_catalog.tooling.samples import render_sample, sample_specs

    seg, matte, seg_s, close_s, matte_s = [], [], [], [], []
    for spec in sample_specs():
        image, truth = render_sample(spec, seed)
        before, _, after, grabcut_seconds, closing_seconds, matting_seconds = _parts(image)
        seg.append(_iou(before, truth))
        matte.append(_iou(after, truth))
        seg_s.append(grabcut_seconds)
        close_s.append(closing_seconds)
        matte_s.append(matting_seconds)
    return {"images": len(seg), "seg_iou_min": min(seg), "seg_iou_mean": float(np.mean(seg)),
            "matte_iou_min": min(matte), "matte_iou_mean": float(np.mean(matte)),
            "seg_s": float(np.mean(seg_s)), "close_s": float(np.mean(close_s)), "matte_s": float(np.mean(matte_s))}


def _checker(size: tuple[int, int]) -> Image.Image:
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    board = np.where((yy // 10 + xx // 10) % 2 == 0, 205, 160).astype(np.uint8)
    return Image.fromarray(np.dstack([board] * 3 + [np.full((h, w), 255, np.uint8)]), "RGBA")


def _tile(image: Image.Image | None, label: str, font) -> Image.Image:
    tile = _checker((TILE, TILE))
    if image is not None:
        image = image.convert("RGBA")
        image.thumbnail((TILE - 8, TILE - 24))
        tile.alpha_composite(image, ((TILE - image.width) // 2, 4 + (TILE - 24 - image.height) // 2))
    draw = ImageDraw.Draw(tile)
    draw.rectangle((0, TILE - 18, TILE, TILE), fill=(255, 255, 255, 255))
    draw.text((4, TILE - 16), label[:34], fill=(20, 20, 20, 255), font=font)
    return tile


def _overlay(truth: np.ndarray | None, mask: np.ndarray | None) -> Image.Image | None:
    """White: product found; red: product missed; green: backdrop taken for product."""
    if truth is None or mask is None:
        return None
    out = np.zeros((*truth.shape, 3), np.uint8)
    out[truth & mask] = (255, 255, 255)
    out[truth & ~mask] = (230, 40, 40)
    out[~truth & mask] = (40, 200, 60)
    return Image.fromarray(out, "RGB")


def contact_sheet(path: Path, names: list[str] | None = None) -> Path:
    """Source, mask against the truth, and each shipped recipe's output, one gallery image a row."""
    from airflow_image_catalog.backends.base import ImageContext
    from airflow_image_catalog.backends.local import LocalEngineBackend
    from airflow_image_catalog.imaging.engine import NoSubjectError, decode_image, product_matte
    from airflow_image_catalog.recipes import load_recipe
    from airflow_image_catalog.tooling.gallery import gallery

    font = ImageFont.load_default(size=12)
    backend = LocalEngineBackend()
    by_name = {item.name: item for item in gallery()}
    items = [by_name[name] for name in names] if names else list(gallery())
    sheet = Image.new("RGB", (TILE * (2 + len(RECIPES)), TILE * (len(items) + 1)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for col, title in enumerate(("source (before)", "mask vs truth", *RECIPES)):
        draw.text((col * TILE + 6, TILE // 2 - 6), title, fill=(0, 0, 0), font=font)
    for row, item in enumerate(items, 1):
        image = decode_image(item.data, keep_alpha=True)
        try:
            mask = product_matte(image)[2]
            score = f"IoU {_iou(mask, item.truth):.3f}" if item.truth is not None else "not refused!"
        except NoSubjectError:
            mask, score = None, "refused (scene)"
        tiles = [_tile(Image.open(io.BytesIO(item.data)), item.name, font),
                 _tile(_overlay(item.truth, mask), score, font)]
        for name in RECIPES:
            recipe = load_recipe(name)
            context = ImageContext(item.name, str(path.parent), recipe.recipe_dir)
            if name == "object_removal":  # a mask over the product's middle, written for this row
                region = np.zeros(image.shape[:2], np.uint8)
                h, w = region.shape
                region[h * 2 // 5 : h * 3 // 5, w * 2 // 5 : w * 3 // 5] = 255
                buf = io.BytesIO()
                Image.fromarray(region, "L").save(buf, "PNG")
                context.cache[context.resolve(recipe.steps[0].mask)] = buf.getvalue()
            try:
                result = backend.edit(item.data, recipe, context)
                tiles.append(_tile(Image.open(io.BytesIO(result.data)), f"{result.format} {result.width}x"
                                   f"{result.height}", font))
            except NoSubjectError:
                tiles.append(_tile(None, "refused", font))
        for col, tile in enumerate(tiles):
            sheet.paste(tile.convert("RGB"), (col * TILE, row * TILE))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, optimize=True)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sheet", type=Path, default=None, help="write the contact sheet (PNG) here")
    parser.add_argument("--no-samples", action="store_true", help="skip the procedural samples")
    args = parser.parse_args(argv)

    _, seconds = _timed(__import__, "pymatting")
    print(f"pymatting import (compiled kernels cached): {seconds:.2f} s, once per process")
    product_matte_warm()
    print("IoU of the product mask against the truth with GrabCut alone, with the parts its edges wall in, and with")
    print("the matted edge (what ships); seconds of GrabCut (work copy), of the edge closing and of the matting")
    print(f"{'image':32} {'kind':7} {'size':>9} {'GrabCut':>8} {'+edges':>7} {'+matting':>9} {'cut s':>6} "
          f"{'edge s':>6} {'matt s':>7}")
    for row in measure_gallery():
        if "refused" in row:
            print(f"{row['name']:32} {row['kind']:7} {row['size']:>9}  refused: {row['refused'][:70]}")
            continue
        ious = f"{row['seg_iou']:8.4f} {row['close_iou']:7.4f} {row['matte_iou']:9.4f}"
        print(f"{row['name']:32} {row['kind']:7} {row['size']:>9} {ious} {row['seg_s']:6.2f} {row['close_s']:6.2f} "
              f"{row['matte_s']:7.2f}")
    if not args.no_samples:
        s = measure_samples()
        print(f"procedural samples ({s['images']}): IoU with GrabCut alone min {s['seg_iou_min']:.4f} mean "
              f"{s['seg_iou_mean']:.4f} ({s['seg_s']:.2f} s/image); shipped (edge closing "
              f"{s['close_s']:.2f} s/image, matted edge {s['matte_s']:.2f} s/image) min {s['matte_iou_min']:.4f} "
              f"mean {s['matte_iou_mean']:.4f}")
    if args.sheet:
        print(f"contact sheet: {contact_sheet(args.sheet, SHEET_ROWS)}")
    return 0


def product_matte_warm() -> None:
    """One matte first, so no row pays for a first call's set-up."""
    from airflow_image_catalog.imaging.engine import product_matte
    from airflow_image_catalog.tooling.samples import render_sample, sample_specs

    product_matte(render_sample(sample_specs()[10], 7)[0])


if __name__ == "__main__":
    raise SystemExit(main())
