# CoreDNS, as kubeadm's Deployment runs it: the image's entrypoint, with -conf from the ConfigMap.
ARG BASE
FROM ${BASE}
COPY coredns /coredns
ENTRYPOINT ["/coredns"]
