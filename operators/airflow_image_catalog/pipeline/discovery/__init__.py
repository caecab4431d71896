"""Discovery: which source images are new or changed since the catalog was last published."""
