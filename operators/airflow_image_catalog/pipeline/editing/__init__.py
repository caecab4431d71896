"""Editing: one chunk of images through a backend, every image ending in a recorded, durable state."""
