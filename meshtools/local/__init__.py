"""The local target: the mesh on loopback with real Envoy binaries, run under supervisord.

mesh.py starts, watches and stops it; envoy_config.py rewrites the committed Envoy configs
(manifests/base/envoy/) for loopback ports; launch.py is what `inv local.up` and `inv demo` run."""
