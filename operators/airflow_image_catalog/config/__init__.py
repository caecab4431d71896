"""Configuration: operator arguments as rendered templates, shipped YAML documents, default locations."""
