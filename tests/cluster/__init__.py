"""The cluster target: tasks against fake tools, manifests, the Dockerfile, the hosted CI, a real kind (opt-in)."""
