"""Tooling apart from the runtime: the local edit service, benchmarks, the reliability suite, sample data, the demo and the folder bundle. No runtime module imports it."""
