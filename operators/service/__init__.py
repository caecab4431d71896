"""The local edit service: the OpenAI images/edits and BFL contracts, backed by the local engine.

Start it with ``python -m operators.service --port 8765``; tests use
:class:`~operators.service.server.LocalEditService` on a free loopback port.
"""
