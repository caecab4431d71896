"""JPEG, PNG and WebP containers walked without decoding a pixel: the one owner of their structure.

Two callers read and rewrite containers: upload preparation drops metadata segments and chunks
(:mod:`~airflow_image_catalog.backends.prepare`) and publishing embeds an XMP packet
(:mod:`~airflow_image_catalog.pipeline.publishing.provenance`). Both walk files through here.
The structures are from the format specifications: JPEG (ITU-T T.81, annex B: marker segments, a
2-byte big-endian length that counts itself, standalone RSTn/EOI markers, the scan after SOS), PNG
(ISO/IEC 15948: signature, then length / type / data / CRC chunks up to IEND) and WebP (RIFF:
``RIFF`` size ``WEBP``, then fourcc / little-endian size / payload chunks, padded to even length).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from airflow_image_catalog.exceptions import CatalogError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8"
JPEG_EOI = b"\xff\xd9"
SOS = 0xDA
MIME = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


class ContainerError(CatalogError, ValueError):
    """The file's structure is not what its format says (truncated, or not that format)."""


def sniff_format(data: bytes) -> str | None:
    """``jpeg``, ``png`` or ``webp`` from the bytes' signature; None for anything else."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == PNG_SIGNATURE:
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


@dataclass(frozen=True)
class Part:
    """One JPEG marker segment or PNG chunk: its kind and where it sits (``data[start:end]`` is all of it)."""

    kind: int | bytes  # the JPEG marker (0xE1 ...) or the PNG chunk type (b"IDAT" ...)
    start: int
    end: int


# -- JPEG -----------------------------------------------------------------------------------------


def jpeg_segments(data: bytes) -> list[Part]:
    """Every marker segment before the scan data, SOS last (its ``end`` is where the scan starts).

    Standalone markers (RSTn, EOI) are 2-byte parts; fill bytes are skipped.
    """
    if data[:2] != JPEG_SOI:
        raise ContainerError("not a JPEG (no SOI marker)")
    segments, pos = [], 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ContainerError(f"malformed JPEG: no marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9 or 0xD0 <= marker <= 0xD7:
            segments.append(Part(marker, pos, pos + 2))
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        if length < 2 or pos + 2 + length > len(data):
            raise ContainerError(f"malformed JPEG: segment 0x{marker:02X} at byte {pos} runs past the end")
        segments.append(Part(marker, pos, pos + 2 + length))
        if marker == SOS:
            return segments
        pos += 2 + length
    raise ContainerError("malformed JPEG: no scan (SOS) found")


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    """A marker segment carrying ``payload`` (at most 65533 bytes: the length field counts itself)."""
    if len(payload) + 2 > 0xFFFF:
        raise ContainerError(f"payload too large for one JPEG segment ({len(payload)} bytes)")
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def jpeg_payload(data: bytes, segment: Part) -> bytes:
    """A marker segment's bytes after its marker and length."""
    return data[segment.start + 4:segment.end]


# -- PNG ------------------------------------------------------------------------------------------


def png_chunks(data: bytes) -> list[Part]:
    """Every chunk (length + type + data + CRC) up to and including IEND."""
    if data[:8] != PNG_SIGNATURE:
        raise ContainerError("not a PNG (no signature)")
    chunks, pos = [], len(PNG_SIGNATURE)
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, end = data[pos + 4:pos + 8], pos + 12 + length
        if end > len(data):
            raise ContainerError(f"malformed PNG: chunk {kind!r} at byte {pos} runs past the end")
        chunks.append(Part(kind, pos, end))
        if kind == b"IEND":
            return chunks
        pos = end
    raise ContainerError("malformed PNG: no IEND chunk")


def png_payload(data: bytes, chunk: Part) -> bytes:
    """A chunk's data, without its length, type and CRC."""
    return data[chunk.start + 8:chunk.end - 4]


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    import zlib

    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


# -- WebP (RIFF) ----------------------------------------------------------------------------------


def riff_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(fourcc, payload) of each chunk of a WebP file."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ContainerError("not a RIFF WebP")
    chunks, pos = [], 12
    while pos + 8 <= len(data):
        kind = data[pos:pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4:pos + 8])
        if pos + 8 + size > len(data):
            raise ContainerError(f"malformed WebP: chunk {kind!r} at byte {pos} runs past the end")
        chunks.append((kind, data[pos + 8:pos + 8 + size]))
        pos += 8 + size + (size & 1)
    return chunks


def riff_chunk(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("<I", len(payload)) + payload + (b"\x00" if len(payload) & 1 else b"")


def riff_file(chunks: list[tuple[bytes, bytes]]) -> bytes:
    """A WebP file of ``chunks`` (the RIFF size is recomputed)."""
    body = b"WEBP" + b"".join(riff_chunk(kind, payload) for kind, payload in chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body
