"""The tooling behind the invoke tasks, one folder per concern; layers import downwards only.

tasks/ (thin invoke collections) → local/ (the mesh on loopback), cluster/ (kind, kubectl,
docker) and views/ (echo, load, trace views) → shared/ (topology, net, processes, readiness).
"""
