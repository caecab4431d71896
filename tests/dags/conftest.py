from operators.service.testing import edit_service, service  # noqa: F401  (fixtures)
