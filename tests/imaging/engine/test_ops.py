from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import airflow_image_catalog.imaging.engine as engine
from airflow_image_catalog.imaging.engine import OPS, OpParamError, apply_op, get_op

EXPECTED_OPS = {
    "white_background",
    "replace_background",
    "recolor_region",
    "remove_object",
    "place_object",
    "white_balance",
    "exposure",
    "saturation",
    "look",
    "color_match",
    "fit_canvas",
}
IMG = np.tile(np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None], (24, 1, 3))


def test_registry_is_complete():
    assert set(OPS) == EXPECTED_OPS
    for spec in OPS.values():
        assert spec.doc and spec.validate({}) == {k: p.default for k, p in spec.params.items()}
    assert OPS["recolor_region"].needs_mask and OPS["place_object"].needs_reference
    assert OPS["color_match"].needs_reference and not OPS["exposure"].needs_mask


@pytest.mark.parametrize(
    ("op", "params", "field", "words"),
    [
        ("exposure", {"stops": 7}, "stops", ["stops", "between -3 and 3", "7"]),
        ("exposure", {"stop": 1}, "stop", ["unknown parameter 'stop'", "stops"]),
        ("exposure", {"stops": "1"}, "stops", ["stops", "number"]),
        ("fit_canvas", {"width": True}, "width", ["width", "integer", "True"]),
        ("fit_canvas", {"width": 100.5}, "width", ["width", "integer"]),
        ("fit_canvas", {"background": "#12345"}, "background", ["background", "hex", "#12345"]),
        ("replace_background", {"color": "red"}, "color", ["color", "#RRGGBB"]),
        ("look", {"name": "sepia"}, "name", ["name", "warm", "sepia"]),
        ("white_background", {"shadow": 1}, "shadow", ["shadow", "boolean"]),
        ("saturation", {"factor": float("nan")}, "factor", ["factor", "finite"]),
    ],
)
def test_param_validation_names_the_field(op, params, field, words):
    with pytest.raises(OpParamError) as exc:
        get_op(op).validate(params)
    assert exc.value.field == field
    for word in words:
        assert word in str(exc.value)
    with pytest.raises(OpParamError):  # the same check on direct calls and apply_op
        apply_op(op, IMG, params)
    fn = getattr(engine, "_".join(op.split("_")), None) or getattr(
        __import__("airflow_image_catalog.imaging.engine.color"), op, None
    )
    del fn


def test_exposure_message_format():
    with pytest.raises(OpParamError, match=r"^exposure: stops must be between -3 and 3, got 7$"):
        apply_op("exposure", IMG, {"stops": 7})


def test_direct_call_validates_like_apply_op():
    from airflow_image_catalog.imaging.engine.color import exposure

    with pytest.raises(OpParamError) as exc:
        exposure(IMG, stops=9)
    assert exc.value.field == "stops"
    assert np.array_equal(exposure(IMG, stops=1.0), apply_op("exposure", IMG, {"stops": 1}))


def test_int_accepted_for_float_and_hex_normalised():
    assert get_op("exposure").validate({"stops": 1}) == {"stops": 1.0}
    assert get_op("fit_canvas").validate({"background": "#abc"})["background"] == "#AABBCC"


def test_unknown_op_lists_known_ops():
    with pytest.raises(OpParamError) as exc:
        get_op("sharpen")
    assert exc.value.field == "op" and "sharpen" in str(exc.value) and "white_background" in str(exc.value)


def test_mask_and_reference_requirements():
    with pytest.raises(OpParamError) as exc:
        apply_op("recolor_region", IMG, {"color": "#FF0000"})
    assert exc.value.field == "mask" and "mask" in str(exc.value)
    with pytest.raises(OpParamError) as exc:
        apply_op("remove_object", IMG, {}, mask=np.zeros((10, 10), bool))
    assert exc.value.field == "mask" and "(24, 32)" in str(exc.value)
    with pytest.raises(OpParamError) as exc:
        apply_op("color_match", IMG, {})
    assert exc.value.field == "references"
    with pytest.raises(OpParamError) as exc:
        apply_op("place_object", IMG, {}, mask=np.ones((24, 32), bool))
    assert exc.value.field == "references"
    with pytest.raises(OpParamError) as exc:
        apply_op("exposure", IMG.astype(np.float32), {})
    assert exc.value.field == "image"


_SIMPLE_CALLS = [
    ("white_balance", {}, {}),
    ("exposure", {"stops": 0.7}, {}),
    ("saturation", {"factor": 1.7}, {}),
    ("look", {"name": "vintage"}, {}),
    ("fit_canvas", {"width": 40, "height": 30}, {}),
    ("recolor_region", {"color": "#00AA00"}, {"mask": True}),
    ("remove_object", {}, {"mask": True}),
    ("place_object", {}, {"mask": True, "references": True}),
    ("replace_background", {"mode": "gradient"}, {"mask": True}),  # noise has no backdrop to segment
    ("color_match", {"region": "all"}, {"references": True}),
]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    call=st.sampled_from(_SIMPLE_CALLS),
    h=st.integers(8, 48),
    w=st.integers(8, 48),
    seed=st.integers(0, 2**16),
)
def test_ops_never_mutate_inputs(call, h, w, seed):
    op, params, extra = call
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), bool)
    mask[h // 4 : h // 2 + 1, w // 4 : w // 2 + 1] = True
    ref = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    copies = (image.copy(), mask.copy(), ref.copy())
    kwargs = {}
    if extra.get("mask"):
        kwargs["mask"] = mask
    if extra.get("references"):
        kwargs["references"] = [ref]
    out = apply_op(op, image, params, **kwargs)
    assert out.dtype == np.uint8 and out.ndim == 3
    assert not np.shares_memory(out, image)
    assert (
        np.array_equal(image, copies[0])
        and np.array_equal(mask, copies[1])
        and np.array_equal(ref, copies[2])
    )
    if op not in ("fit_canvas",):
        assert out.shape == image.shape
    if op == "replace_background":  # the mask is the subject: it stays, the rest is new backdrop
        from airflow_image_catalog.imaging.engine._common import erode

        core = erode(mask, 2)
        assert np.array_equal(out[core], image[core])
    elif extra.get("mask") and op != "place_object":
        outside = ~np.pad(mask, 0)
        if op == "remove_object":
            from airflow_image_catalog.imaging.engine._common import dilate

            outside = ~dilate(mask, 4)
        assert np.array_equal(out[outside], image[outside])
