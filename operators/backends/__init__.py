"""Edit backends: one module per provider contract, all behind :class:`EditBackend`."""

from operators.backends.base import EditBackend, EditResult, ImageContext

__all__ = ["EditBackend", "EditResult", "ImageContext"]
