"""Triggers: poll asynchronous provider jobs without holding a worker slot."""
