"""People detection measured on photos with and without people from packages' bundled data.

``python -m airflow_image_catalog.tooling.bench.people`` (``make bench-people``) runs the rights check's
face detector (:func:`airflow_image_catalog.pipeline.rights.people.detect_people`, the policy's
default search size and smallest face) over:

- **faces**: scikit-image's ``lfw_subset`` (100 Labeled Faces in the Wild crops; the 25 x 25 crop
  scaled to 100 x 100 on a 200 x 200 grey canvas, as a portrait fills a frame), plus the whole photos
  with a person that scikit-image and matplotlib ship (``astronaut``, ``camera``, ``grace_hopper``);
- **no faces**: the 100 non-face LFW patches the same way, every scikit-image / matplotlib photo
  without a person, and the project's procedural product samples (what a catalog sends most).

It prints the miss rate (faces not found) and the false-positive rate (images without people where
a face was reported), per set, the images that went wrong, and the seconds per image.
"""

from __future__ import annotations

import io
import statistics
import time
from pathlib import Path

#: scikit-image photos without a person (``skimage.data`` loaders)
SKIMAGE_NO_PEOPLE = ("coffee", "chelsea", "rocket", "horse", "coins", "gravel", "brick", "grass",
                     "hubble_deep_field", "retina", "page", "text", "logo", "immunohistochemistry", "moon",
                     "clock", "cell", "colorwheel", "motorcycle_left")
SKIMAGE_PEOPLE = ("astronaut", "camera")  # camera: the cameraman, his face turned and shaded


def _png(pixels) -> bytes:
    import numpy as np
    from PIL import Image

    array = np.asarray(pixels)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        array = (255 * (array - array.min()) / max(float(array.max() - array.min()), 1e-9)).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def _portrait(patch) -> bytes:
    """An LFW crop (25 x 25, 0..1) as a 200 x 200 photo: scaled to 100 x 100 on mid grey."""
    import numpy as np
    from PIL import Image

    face = Image.fromarray((np.asarray(patch) * 255).astype(np.uint8)).resize((100, 100), Image.Resampling.BICUBIC)
    canvas = Image.new("L", (200, 200), 128)
    canvas.paste(face, (50, 50))
    buffer = io.BytesIO()
    canvas.save(buffer, "PNG")
    return buffer.getvalue()


def _skimage(name: str) -> bytes:
    from skimage import data

    if name == "motorcycle_left":
        return _png(data.stereo_motorcycle()[0])
    return _png(getattr(data, name)())


def image_sets(samples_dir: Path) -> dict[str, tuple[bool, dict[str, bytes]]]:
    """Set name -> (people shown?, image name -> encoded bytes)."""
    import matplotlib
    from skimage import data

    from airflow_image_catalog.tooling.samples import make_samples

    lfw = data.lfw_subset()  # the first 100 are faces, the last 100 are not (scikit-image's docs)
    sample_data = Path(matplotlib.get_data_path()) / "sample_data"
    make_samples(samples_dir, samples_dir.with_name(samples_dir.name + "_truth"))
    products = {p.stem: p.read_bytes() for p in sorted(samples_dir.iterdir())
                if p.suffix in (".jpg", ".png") and not p.stem.startswith("photo_")}
    return {
        "lfw faces": (True, {f"lfw_face_{i:03d}": _portrait(lfw[i]) for i in range(100)}),
        "photos with a person": (True, {**{n: _skimage(n) for n in SKIMAGE_PEOPLE},
                                        "grace_hopper": (sample_data / "grace_hopper.jpg").read_bytes()}),
        "lfw non-faces": (False, {f"lfw_other_{i:03d}": _portrait(lfw[100 + i]) for i in range(100)}),
        "photos without people": (False, {**{n: _skimage(n) for n in SKIMAGE_NO_PEOPLE},
                                          "present": (sample_data / "Minduka_Present_Blue_Pack.png").read_bytes()}),
        "product samples": (False, products),
    }


def main(argv: list[str] | None = None) -> int:
    import argparse
    import tempfile

    from airflow_image_catalog.pipeline.rights.people import (
        DEFAULT_MAX_SIDE,
        DEFAULT_MIN_FACE,
        DETECTOR,
        detect_people,
    )

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-side", type=int, default=DEFAULT_MAX_SIDE)
    parser.add_argument("--min-face", type=float, default=DEFAULT_MIN_FACE)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        sets = image_sets(Path(tmp) / "samples")
    print(f"people detection: {DETECTOR}, search at {args.max_side} px, faces >= {args.min_face:.0%} of the "
          f"shorter side")
    seconds: list[float] = []
    totals = {True: [0, 0], False: [0, 0]}  # people shown -> [wrong, images]
    for name, (people, images) in sets.items():
        wrong = []
        for image_name, data in images.items():
            started = time.perf_counter()
            found = detect_people(data, max_side=args.max_side, min_face=args.min_face).faces > 0
            seconds.append(time.perf_counter() - started)
            if found != people:
                wrong.append(image_name)
        totals[people][0] += len(wrong)
        totals[people][1] += len(images)
        what = "missed" if people else "false positives"
        print(f"  {name:22s} {len(images):4d} images  {what} {len(wrong):3d} ({len(wrong) / len(images):.1%})"
              + (f": {', '.join(wrong[:8])}{' ...' if len(wrong) > 8 else ''}" if wrong else ""))
    (missed, with_people), (false_positive, without) = totals[True], totals[False]
    print(f"  miss rate {missed / with_people:.1%} ({missed} of {with_people} images with people); "
          f"false-positive rate {false_positive / without:.1%} ({false_positive} of {without} without)")
    print(f"  {statistics.mean(seconds) * 1000:.0f} ms per image (median {statistics.median(seconds) * 1000:.0f} ms, "
          f"max {max(seconds) * 1000:.0f} ms), one thread")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
