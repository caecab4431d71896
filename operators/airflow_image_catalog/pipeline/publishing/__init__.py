"""Publishing: passed images to the catalog with provenance, the run report, the audit trail and the feed."""
