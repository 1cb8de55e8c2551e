# kube-proxy (kubeadm's DaemonSet runs /usr/local/bin/kube-proxy) behind a script that points
# iptables at the mode the node uses; the base carries iptables and conntrack.
ARG BASE
FROM ${BASE}
COPY kube-proxy /usr/local/libexec/kube-proxy
COPY kube-proxy-wrapper /usr/local/bin/kube-proxy
