"""The workspace: every path under a workspace, the manifests that travel between tasks, per-image state and the result cache."""
