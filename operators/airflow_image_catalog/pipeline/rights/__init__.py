"""Rights and consent before any edit: the rights a source carries (IPTC / XMP / IIM, a sidecar), a policy,
people found in the photo, and a decision per image (``go`` / ``needs_consent`` / ``refused``); the
consent queue a person answers. Runs between discovery and the cost check; no Airflow import."""
