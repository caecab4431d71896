"""exiftool (Debian ``libimage-exiftool-perl``; ``make exiftool`` installs it where it may) as the independent
writer and reader of IPTC / XMP rights metadata in the rights tests.

exiftool 12.57 (Debian 12) predates the PLUS ``DataMining`` and ``OtherConstraints`` properties (IPTC Photo
Metadata 2023.1); :data:`PLUS_CONFIG` declares them as exiftool's own user-defined-tag mechanism does, in
the PLUS namespace exiftool already knows, so the packets it writes are the standard's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

EXIFTOOL = shutil.which("exiftool")
needs_exiftool = pytest.mark.skipif(EXIFTOOL is None, reason="exiftool not found (make exiftool; Debian "
                                                              "libimage-exiftool-perl): independent reader skipped")

PLUS_CONFIG = """%Image::ExifTool::UserDefined = (
    'Image::ExifTool::PLUS::XMP' => {
        DataMining => { },
        OtherConstraints => { Writable => 'lang-alt' },
    },
);
1;
"""


def _config(directory: Path) -> Path:
    path = directory / "exiftool-plus.config"
    if not path.exists():
        path.write_text(PLUS_CONFIG)
    return path


def write_tags(path: Path, tags: dict[str, str | list[str]]) -> None:
    """Write ``tags`` (``Group:Tag`` -> value or values, e.g. ``XMP-dc:Rights``) into ``path`` in place."""
    args = [EXIFTOOL, "-config", str(_config(path.parent)), "-q", "-overwrite_original", "-charset", "iptc=UTF8"]
    for tag, value in tags.items():
        args += [f"-{tag}={item}" for item in (value if isinstance(value, list) else [value])]
    subprocess.run([*args, str(path)], check=True, capture_output=True, text=True)


def read_tags(path: Path, *only: str) -> dict[str, object]:
    """The tags exiftool reads from ``path`` (all, or ``only`` these), keyed ``Group1:Tag`` (``XMP-dc:Rights``,
    ``IPTC:By-line``)."""
    proc = subprocess.run([EXIFTOOL, "-config", str(_config(path.parent)), "-j", "-G1", "-a", "-struct",
                           *(f"-{tag}" for tag in only), str(path)], check=True, capture_output=True, text=True)
    return json.loads(proc.stdout)[0]
