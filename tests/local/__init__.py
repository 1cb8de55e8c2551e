"""The local target: the supervised mesh on loopback, its tasks, faults and cleanup."""
