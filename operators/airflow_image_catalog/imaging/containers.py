"""JPEG, PNG and WebP containers walked without decoding a pixel: the one owner of their structure.

Three callers read and rewrite containers: upload preparation drops metadata segments and chunks
(:mod:`~airflow_image_catalog.backends.prepare`), the rights check reads the source's XMP packet and
IPTC-IIM block (:mod:`~airflow_image_catalog.pipeline.rights.metadata`) and publishing embeds an XMP
packet and, for JPEG, an IIM block (:mod:`~airflow_image_catalog.pipeline.publishing.provenance`).
All walk files through here; where a metadata packet sits in each format is decided only here.
The structures are from the format specifications: JPEG (ITU-T T.81, annex B: marker segments, a
2-byte big-endian length that counts itself, standalone RSTn/EOI markers, the scan after SOS), PNG
(ISO/IEC 15948: signature, then length / type / data / CRC chunks up to IEND) and WebP (RIFF:
``RIFF`` size ``WEBP``, then fourcc / little-endian size / payload chunks, padded to even length).

Metadata placement follows the XMP Specification Part 3 (JPEG: an APP1 segment starting
``http://ns.adobe.com/xap/1.0/\0``; PNG: an ``iTXt`` chunk keyed ``XML:com.adobe.xmp``; WebP: an
``XMP `` chunk flagged in ``VP8X``) and, for IPTC-IIM in JPEG, Adobe's Photoshop image resources:
an APP13 segment starting ``Photoshop 3.0\0`` holding ``8BIM`` resources, IIM in resource 0x0404
and its MD5 digest in 0x0425 (how the IPTC Photo Metadata Standard says IIM travels in JPEG).
"""

from __future__ import annotations

import hashlib
import struct
import zlib
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


# -- metadata packets: XMP (every format) and IPTC-IIM (JPEG) --------------------------------------

_JPEG_XMP_ID = b"http://ns.adobe.com/xap/1.0/\x00"
_JPEG_PHOTOSHOP_ID = b"Photoshop 3.0\x00"
_PNG_XMP_KEYWORD = b"XML:com.adobe.xmp"
_IIM_RESOURCE, _IIM_DIGEST_RESOURCE = 0x0404, 0x0425
APP1, APP13 = 0xE1, 0xED


def _jpeg_is_xmp(data: bytes, segment: Part) -> bool:
    return segment.kind == APP1 and jpeg_payload(data, segment).startswith(_JPEG_XMP_ID)


def _jpeg_is_photoshop(data: bytes, segment: Part) -> bool:
    return segment.kind == APP13 and jpeg_payload(data, segment).startswith(_JPEG_PHOTOSHOP_ID)


def _jpeg_replace(data: bytes, new: bytes, drop, *, after: tuple[int, ...]) -> bytes:
    """``data`` with ``new`` segments inserted after the leading ``after`` segments (JFIF, Exif ...) and
    every segment ``drop`` matches removed: one packet of a kind, never two that disagree."""
    segments = jpeg_segments(data)
    insert_at = 2
    for part in segments:
        if part.kind in after and not drop(data, part):
            insert_at = part.end
        else:
            break
    out, pos = bytearray(data[:insert_at]), insert_at
    out += new
    for part in segments:
        if part.start >= insert_at and drop(data, part):
            out += data[pos:part.start]
            pos = part.end
    out += data[pos:]
    return bytes(out)


def _png_itxt_xmp(data: bytes, chunk: Part) -> bytes | None:
    keyword, _, rest = png_payload(data, chunk).partition(b"\x00")
    if keyword != _PNG_XMP_KEYWORD or len(rest) < 2:
        return None
    compressed, rest = rest[0], rest[2:]  # compression flag, method
    _language, _, rest = rest.partition(b"\x00")
    _translated, _, text = rest.partition(b"\x00")
    return zlib.decompress(text) if compressed else text


def _webp_vp8x(chunks: list[tuple[bytes, bytes]]) -> bytes:
    """A VP8X header for a simple (VP8 / VP8L) WebP, which cannot carry metadata chunks."""
    kind, payload = chunks[0]
    if kind == b"VP8 " and payload[3:6] == b"\x9d\x01\x2a":
        width = struct.unpack("<H", payload[6:8])[0] & 0x3FFF
        height = struct.unpack("<H", payload[8:10])[0] & 0x3FFF
        alpha = False
    elif kind == b"VP8L" and payload[:1] == b"\x2f":
        bits = struct.unpack("<I", payload[1:5])[0]
        width, height, alpha = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool((bits >> 28) & 1)
    else:
        raise ContainerError(f"malformed WebP: unexpected first chunk {kind!r}")
    flags = 0x10 if alpha else 0
    return bytes([flags, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")


def get_xmp(data: bytes) -> bytes | None:
    """The file's (standard) XMP packet; None when it has none or is not JPEG / PNG / WebP."""
    fmt = sniff_format(data)
    if fmt == "jpeg":
        return next((jpeg_payload(data, p)[len(_JPEG_XMP_ID):] for p in jpeg_segments(data)
                     if _jpeg_is_xmp(data, p)), None)
    if fmt == "png":
        return next((packet for p in png_chunks(data) if p.kind == b"iTXt"
                     and (packet := _png_itxt_xmp(data, p)) is not None), None)
    if fmt == "webp":
        return next((payload for kind, payload in riff_chunks(data) if kind == b"XMP "), None)
    return None


def put_xmp(data: bytes, packet: bytes) -> bytes:
    """``data`` carrying ``packet`` as its only XMP packet; image data is copied byte for byte."""
    fmt = sniff_format(data)
    if fmt == "jpeg":
        segment = jpeg_segment(APP1, _JPEG_XMP_ID + packet)  # after JFIF (APP0) and Exif (APP1)
        return _jpeg_replace(data, segment, _jpeg_is_xmp, after=(0xE0, APP1))
    if fmt == "png":
        chunk = png_chunk(b"iTXt", _PNG_XMP_KEYWORD + b"\x00\x00\x00\x00\x00" + packet)  # uncompressed
        out, placed = bytearray(PNG_SIGNATURE), False
        for part in png_chunks(data):
            if part.kind == b"iTXt" and _png_itxt_xmp(data, part) is not None:
                continue  # replaced
            if part.kind == b"IDAT" and not placed:  # XMP goes before the image data
                out += chunk
                placed = True
            out += data[part.start:part.end]
        if not placed:
            raise ContainerError("malformed PNG: no IDAT chunk")
        return bytes(out)
    if fmt == "webp":
        chunks = [(k, p) for k, p in riff_chunks(data) if k != b"XMP "]
        if not chunks:
            raise ContainerError("malformed WebP: no chunks")
        if chunks[0][0] != b"VP8X":
            chunks.insert(0, (b"VP8X", _webp_vp8x(chunks)))
        header = bytearray(chunks[0][1])
        header[0] |= 0x04  # XMP metadata present
        chunks[0] = (b"VP8X", bytes(header))
        return riff_file([*chunks, (b"XMP ", packet)])
    raise ContainerError("not a JPEG, PNG or WebP file")


def _photoshop_resources(block: bytes) -> list[tuple[int, bytes, bytes]]:
    """(id, name, data) of each ``8BIM`` image resource: 4-byte signature, 2-byte id, a Pascal name padded
    to even length, a 4-byte size and the data padded to even length."""
    resources, pos = [], 0
    while pos + 12 <= len(block) and block[pos:pos + 4] == b"8BIM":
        (resource_id,) = struct.unpack(">H", block[pos + 4:pos + 6])
        name_length = block[pos + 6]
        name_end = pos + 7 + name_length + (1 - name_length % 2)  # length byte + name, even in all
        if name_end + 4 > len(block):
            raise ContainerError("malformed Photoshop resource block: name runs past the end")
        (size,) = struct.unpack(">I", block[name_end:name_end + 4])
        start = name_end + 4
        if start + size > len(block):
            raise ContainerError(f"malformed Photoshop resource 0x{resource_id:04X}: runs past the end")
        resources.append((resource_id, block[pos + 7:pos + 7 + name_length], block[start:start + size]))
        pos = start + size + (size & 1)
    return resources


def get_iim(data: bytes) -> bytes | None:
    """A JPEG's IPTC-IIM block (resource 0x0404 of its Photoshop APP13 segments); None without one.

    A block larger than one segment continues in the next APP13 segment, so their payloads are joined.
    """
    if sniff_format(data) != "jpeg":
        return None
    parts = [jpeg_payload(data, p)[len(_JPEG_PHOTOSHOP_ID):] for p in jpeg_segments(data)
             if _jpeg_is_photoshop(data, p)]
    if not parts:
        return None
    return next((body for rid, _name, body in _photoshop_resources(b"".join(parts)) if rid == _IIM_RESOURCE), None)


def put_iim(data: bytes, iim: bytes) -> bytes:
    """A JPEG carrying ``iim`` as its IPTC-IIM block, with the MD5 digest readers check it against.

    Other Photoshop resources the file had are kept; a JPEG only (PNG and WebP have no IIM place).
    """
    if sniff_format(data) != "jpeg":
        raise ContainerError("IPTC-IIM is embedded in JPEG files only")
    kept = b""
    parts = [jpeg_payload(data, p)[len(_JPEG_PHOTOSHOP_ID):] for p in jpeg_segments(data)
             if _jpeg_is_photoshop(data, p)]
    for rid, name, body in _photoshop_resources(b"".join(parts)) if parts else []:
        if rid not in (_IIM_RESOURCE, _IIM_DIGEST_RESOURCE):
            kept += _photoshop_resource(rid, body, name)
    block = kept + _photoshop_resource(_IIM_RESOURCE, iim) + _photoshop_resource(
        _IIM_DIGEST_RESOURCE, hashlib.md5(iim, usedforsecurity=False).digest())
    room = 0xFFFF - 2 - len(_JPEG_PHOTOSHOP_ID)
    segments = b"".join(jpeg_segment(APP13, _JPEG_PHOTOSHOP_ID + block[i:i + room])
                        for i in range(0, len(block), room))
    return _jpeg_replace(data, segments, _jpeg_is_photoshop, after=(0xE0, APP1, 0xE2))


def _photoshop_resource(resource_id: int, body: bytes, name: bytes = b"") -> bytes:
    pascal = bytes([len(name)]) + name + (b"" if len(name) % 2 else b"\x00")
    return b"8BIM" + struct.pack(">H", resource_id) + pascal + struct.pack(">I", len(body)) + body + (
        b"\x00" if len(body) & 1 else b"")
