from operators.storage.testing import moto_server, s3_bucket, s3_fault_proxy, s3_faults  # noqa: F401  (fixtures)
