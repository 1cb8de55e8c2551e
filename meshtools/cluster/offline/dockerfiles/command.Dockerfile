# One command of the control plane (kube-apiserver, kube-controller-manager, kube-scheduler,
# etcd) on the offline Debian base; kubeadm's static pods run it by name.
ARG BASE
FROM ${BASE}
ARG COMMAND
COPY ${COMMAND} /usr/local/bin/
