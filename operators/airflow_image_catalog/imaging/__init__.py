"""Imaging: the local engine's pure image ops and image decoding."""
