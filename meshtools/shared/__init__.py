"""What every part of the tooling uses: the topology (names, ports, paths, defined once),
TCP probes and free ports, subprocesses, readiness waits, pids and signals, background servers."""
