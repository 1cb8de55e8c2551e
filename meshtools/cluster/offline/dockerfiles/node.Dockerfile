# A kind node from Debian's packages: kind's own entrypoint, units and containerd config (from
# the kind module, copied in at build time), the Kubernetes commands in /usr/bin as kind
# expects, a static pod network, and runc behind runc-within-bounds. The images the cluster
# runs are imported into containerd afterwards (meshtools/cluster/offline/node.py).
ARG BASE
FROM ${BASE}
COPY kind/usr/local/bin/ /usr/local/bin/
COPY kind/kind/ /kind/
COPY kind/etc/ /etc/
COPY kubernetes/ /usr/bin/
COPY runc-within-bounds /usr/local/sbin/
COPY 10-pod-network.conflist /etc/cni/net.d/
COPY default-cni.yaml default-storage.yaml /kind/manifests/
COPY version /kind/version
RUN chmod 0755 /kind/bin/* /usr/local/bin/* /usr/local/sbin/* /usr/bin/kube* \
    # Debian's containerd is in /usr/bin, kind's unit starts /usr/local/bin/containerd;
    # Debian's CNI plugins are in /usr/lib/cni, containerd looks in /opt/cni/bin.
    && ln -sf /usr/bin/containerd /usr/local/bin/containerd \
    && mkdir -p /opt/cni && ln -sfn /usr/lib/cni /opt/cni/bin \
    && sed -i '0,/SystemdCgroup = true/s//SystemdCgroup = true\n    BinaryName = "\/usr\/local\/sbin\/runc-within-bounds"/' \
           /etc/containerd/config.toml \
    && grep -q runc-within-bounds /etc/containerd/config.toml \
    # As kind's base image: no units a container cannot run, systemd's own tmpfiles aside.
    && find /lib/systemd/system/sysinit.target.wants/ -name "systemd-tmpfiles-setup.service" -delete \
    && rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \
             /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \
             /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/* \
    && echo "ReadKMsg=no" >> /etc/systemd/journald.conf \
    && systemctl enable kubelet.service containerd.service undo-mount-hacks.service \
    && systemctl mask systemd-binfmt.service \
    && mkdir -p /etc/kubernetes/manifests \
    && ctr oci spec \
       | jq '.hooks.createContainer[.hooks.createContainer | length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \
       | jq 'del(.process.rlimits)' > /etc/containerd/cri-base.json
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]
