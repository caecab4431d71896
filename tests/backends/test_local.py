"""The local engine backend on a transparent PNG through every shipped recipe (gift box from matplotlib)."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from airflow_image_catalog.backends.base import ImageContext
from airflow_image_catalog.backends.local import LocalEngineBackend
from airflow_image_catalog.imaging.engine import decode_image, flatten
from airflow_image_catalog.imaging.engine._common import bbox, dilate
from airflow_image_catalog.recipes import RecipeError, load_recipe, parse_recipe, shipped_recipes
from airflow_image_catalog.tooling.gallery import by_name

SOURCE = by_name("present_cutout_large")


@pytest.fixture(scope="module")
def present() -> np.ndarray:
    return decode_image(SOURCE.data, keep_alpha=True)


def _edit(recipe, data: bytes, source_root: str = "/nowhere", image_id: str = "present"):
    context = ImageContext(image_id=image_id, source_root=source_root, recipe_dir=recipe.recipe_dir)
    result = LocalEngineBackend().edit(data, recipe, context)
    with Image.open(io.BytesIO(result.data)) as img:
        assert img.format.lower() == result.format and img.size == (result.width, result.height)
        bands = img.getbands()
    return result, decode_image(result.data, keep_alpha=True), bands


def test_every_shipped_recipe_is_covered():
    assert set(shipped_recipes()) == {"marketplace_white_square", "seasonal_background_swap",
                                      "color_match_reference", "object_removal", "campaign_style_look"}


def test_marketplace_square_is_the_whole_cutout_on_pure_white(present):
    _, out, bands = _edit(load_recipe("marketplace_white_square"), SOURCE.data)
    assert bands == ("R", "G", "B") and out.shape == (2000, 2000, 3)
    # the expected picture: the cut-out flattened on white, its product box scaled to 85 % of the square
    flat = flatten(present)
    y0, y1, x0, x1 = bbox((np.abs(flat.astype(int) - 255) > 8).any(axis=-1))
    oy0, oy1, ox0, ox1 = bbox((np.abs(out.astype(int) - 255) > 8).any(axis=-1))
    assert abs(max(oy1 - oy0, ox1 - ox0) - 1700) <= 2
    expected = cv2.resize(flat[y0:y1, x0:x1], (ox1 - ox0, oy1 - oy0), interpolation=cv2.INTER_CUBIC)
    assert np.abs(out[oy0:oy1, ox0:ox1].astype(int) - expected).mean() < 3.0  # whole, unclipped, untinted
    assert (out[:100] == 255).all() and (out[:, :100] == 255).all()  # margins pure white


def test_seasonal_swap_keeps_the_cutout_and_its_shadow(present):
    _, out, _ = _edit(load_recipe("seasonal_background_swap"), SOURCE.data)
    alpha = present[..., 3]
    solid, clear = alpha == 255, alpha == 0
    assert np.abs(out[solid].astype(int) - present[..., :3][solid]).mean() < 2.0  # JPEG only
    winter = decode_image((Path(load_recipe("seasonal_background_swap").recipe_dir.removeprefix("file://"))
                           / "assets" / "winter_backdrop.jpg").read_bytes())
    from airflow_image_catalog.imaging.engine.background import cover

    backdrop = cover(winter, present.shape[:2])
    assert np.abs(out[clear].astype(int) - backdrop[clear]).mean() < 2.0


def test_color_match_keeps_the_png_transparent(present):
    _, out, bands = _edit(load_recipe("color_match_reference"), SOURCE.data)
    assert bands == ("R", "G", "B", "A")
    assert np.array_equal(out[..., 3], present[..., 3])  # the cut-out's exact alpha
    solid = present[..., 3] == 255
    assert np.abs(out[..., :3][solid].astype(int) - present[..., :3][solid]).mean() > 10  # recoloured


def test_campaign_look_grades_the_product_and_leaves_white_white(present):
    _, out, bands = _edit(load_recipe("campaign_style_look"), SOURCE.data)
    assert bands == ("R", "G", "B")
    clear = present[..., 3] == 0
    away = ~dilate(~clear, 8)  # JPEG rings within its 8x8 blocks beside the product
    assert np.abs(out[away].astype(int) - 255).max() <= 2  # no mint or cream backdrop
    assert np.abs(out[clear].astype(int) - 255).mean() < 0.5
    solid = present[..., 3] == 255
    graded = np.abs(out[solid].astype(int) - flatten(present)[solid]).mean()
    assert graded > 5


def test_object_removal_keeps_the_png_transparent(present, tmp_path: Path):
    region = np.zeros(present.shape[:2], np.uint8)
    region[180:260, 180:260] = 255  # a patch of the box's front
    (tmp_path / "masks").mkdir()
    Image.fromarray(region, "L").save(tmp_path / "masks" / "present.png")
    _, out, bands = _edit(load_recipe("object_removal"), SOURCE.data, source_root=str(tmp_path))
    assert bands == ("R", "G", "B", "A")
    outside = ~np.asarray(Image.fromarray(region).resize(region.shape[::-1])).astype(bool)
    outside[170:270, 170:270] = False  # the op dilates the mask
    assert np.array_equal(out[outside], present[outside])


def _recipe(output: dict, op: str = "fit_canvas", params: dict | None = None) -> dict:
    return {"name": "mine", "output": output,
            "steps": [{"id": "one", "prompt": "do it", "local": {"op": op, "params": params or {}}}]}


def test_transparent_output_needs_a_format_with_alpha():
    with pytest.raises(RecipeError, match=r"mine.yaml: output.background: transparent needs a format that "
                                          r"carries alpha \(png or webp\), got format jpeg"):
        parse_recipe(_recipe({"format": "jpeg", "background": "transparent"}), origin="dir/mine.yaml")
    with pytest.raises(RecipeError, match=r"output.background: must be one of auto, transparent, opaque"):
        parse_recipe(_recipe({"format": "png", "background": "clear"}), origin="mine.yaml")
    step = _recipe({"format": "png"})
    step["steps"][0]["output"] = {"format": "jpeg", "background": "transparent"}
    with pytest.raises(RecipeError, match=r"steps\[0\].output.background: transparent needs"):
        parse_recipe(step, origin="mine.yaml")


def test_transparent_output_refuses_a_step_that_paints_a_backdrop():
    with pytest.raises(RecipeError, match=r"mine.yaml: steps\[0\].local.op: white_background paints an opaque "
                                          r"backdrop, which output.background: transparent would discard"):
        parse_recipe(_recipe({"format": "png", "background": "transparent"}, "white_background"),
                     origin="mine.yaml")


def test_transparent_output_cuts_a_photo_out(sample_set):
    dest, truth_dir = sample_set
    recipe = parse_recipe(_recipe({"format": "png", "background": "transparent"}, "fit_canvas",
                                  {"width": 1000, "height": 1000, "product_fill": 0}), origin="mine.yaml")
    _, out, bands = _edit(recipe, (dest / "ball_red.png").read_bytes())
    assert bands == ("R", "G", "B", "A") and out.shape == (1000, 1000, 4)
    truth = np.asarray(Image.open(truth_dir / "ball_red.png")) > 127
    mine = out[..., 3] >= 128
    assert (mine & truth).sum() / (mine | truth).sum() >= 0.97
    opaque = parse_recipe(_recipe({"format": "png", "background": "opaque"}), origin="mine.yaml")
    assert _edit(opaque, SOURCE.data)[2] == ("R", "G", "B")  # opaque: flattened on white even as PNG


def test_a_transparent_output_still_refuses_a_scene():
    from airflow_image_catalog.imaging.engine import NoSubjectError

    recipe = parse_recipe(_recipe({"format": "png", "background": "transparent"}), origin="mine.yaml")
    with pytest.raises(NoSubjectError, match="looks like a scene"):
        _edit(recipe, by_name("scene_coffee").data)
