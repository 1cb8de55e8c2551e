#!/usr/bin/env bash
# A local stand-in for the Python slim base image, for the docker tests on machines that reach
# no image registry (tests/support/docker_engine.py runs it when the pinned base cannot be
# pulled): debootstrap --variant=minbase of the host's Debian suite + python3/venv/pip/
# ca-certificates, the host's CA bundle copied in (so pip in a build trusts what the host
# trusts), python/pip on PATH, PEP 668 marker removed, then `docker import`.
#
# Usage: DOCKER_HOST=... standin_base.sh [CACHE_DIR]
#   CACHE_DIR   default ~/.cache/envoy-tracing (the downloaded debs and the finished rootfs tar,
#               so a second run only checks that the imported image is current: well under 1 s)
# Env: MIRROR / SECURITY_MIRROR (default: taken from the host's apt sources), SUITE (default: host's),
#      IMAGE (default envoy-tracing/standin-python), REBUILD=1 ignores the rootfs cache.
# stdout: the image reference (IMAGE:3.11-slim-SUITE); diagnostics on stderr. Needs root.
set -euo pipefail

CACHE_DIR="${1:-${HOME:-/root}/.cache/envoy-tracing}"
: "${DOCKER_HOST:?set DOCKER_HOST to the daemon to import into}"
IMAGE="${IMAGE:-envoy-tracing/standin-python}"
ARCH="$(dpkg --print-architecture)"
log() { echo "standin-base: $*" >&2; }

[ "$(id -u)" = 0 ] || { log "must run as root"; exit 1; }
for c in debootstrap docker tar sha256sum; do
  command -v "$c" >/dev/null || { log "missing $c (apt-get install debootstrap docker.io)"; exit 1; }
done
docker version >/dev/null 2>&1 || { log "no docker daemon answers on $DOCKER_HOST (.ci/docker-up starts one)"; exit 1; }

# --- suite and mirrors: the same as the host's apt (only the package registries are reachable)
. /etc/os-release
SUITE="${SUITE:-${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}}"
host_uri() {  # $1 = suite to look for; prints the first URI apt uses for it
  local want="$1"
  {
    # deb822 *.sources
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] || continue
      awk -v want="$want" '
        /^[[:space:]]*$/ { if (ok && uri) { print uri; done=1; exit } ; uri=""; ok=0; next }
        /^URIs:/   { uri=$2 }
        /^Suites:/ { for (i=2;i<=NF;i++) if ($i==want) ok=1 }
        END        { if (!done && ok && uri) print uri }' "$f" ||:
    done
    # one-line sources.list
    { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null ||:; } |
      awk -v want="$want" '$1=="deb" { u=""; s=""; for (i=2;i<=NF;i++) { if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; continue } if (!u) u=$i; else if (!s) { s=$i; break } } if (s==want) print u }' ||:
  } | head -n1 ||:
}
MIRROR="${MIRROR:-$(host_uri "$SUITE")}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${SECURITY_MIRROR:-$(host_uri "$SUITE-security")}"
log "suite=$SUITE arch=$ARCH mirror=$MIRROR security=${SECURITY_MIRROR:-none}"

PKGS="python3,python3-venv,python3-pip,ca-certificates"
SCRIPT_SUM="$(sha256sum "$0" | cut -c1-12)"
DEBS_KEY="$(printf '%s|' "$SUITE" "$ARCH" "$MIRROR" "$PKGS" | sha256sum | cut -c1-12)"
ROOTFS_KEY="$(printf '%s|' "$DEBS_KEY" "$SECURITY_MIRROR" "$SCRIPT_SUM" "$(sha256sum /etc/ssl/certs/ca-certificates.crt)" | sha256sum | cut -c1-12)"
DEBS_TGZ="$CACHE_DIR/debootstrap-$SUITE-$ARCH-$DEBS_KEY.debs.tgz"
ROOTFS_TAR="$CACHE_DIR/rootfs-standin-python-$SUITE-$ARCH-$ROOTFS_KEY.tar"
mkdir -p "$CACHE_DIR"

TMP=""
cleanup() {
  if [ -n "$TMP" ] && [ -d "$TMP" ]; then
    for m in $(findmnt -rn -o TARGET | awk -v d="$TMP" 'index($0, d "/") == 1' | sort -r); do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
    rm -rf --one-file-system "$TMP"
  fi
}
trap cleanup EXIT

if [ "${REBUILD:-0}" = 1 ] || [ ! -s "$ROOTFS_TAR" ]; then
  TMP="$(mktemp -d "${TMPDIR:-/tmp}/standin-base.XXXXXX")"
  # 1. downloaded .debs, cached (debootstrap --make-tarball / --unpack-tarball)
  if [ ! -s "$DEBS_TGZ" ]; then
    log "downloading packages -> $DEBS_TGZ"
    debootstrap --variant=minbase --arch="$ARCH" --include="$PKGS" \
      --make-tarball="$TMP/debs.tgz" "$SUITE" "$TMP/mk" "$MIRROR" >"$TMP/make-tarball.log" 2>&1 \
      || { tail -n 30 "$TMP/make-tarball.log" >&2; exit 1; }
    mv "$TMP/debs.tgz" "$DEBS_TGZ"
    rm -rf --one-file-system "$TMP/mk"
  fi
  # 2. bootstrap from the cached debs
  R="$TMP/rootfs"
  log "debootstrap $SUITE into $R"
  debootstrap --variant=minbase --arch="$ARCH" --include="$PKGS" \
    --unpack-tarball="$DEBS_TGZ" "$SUITE" "$R" "$MIRROR" >"$TMP/debootstrap.log" 2>&1 \
    || { tail -n 30 "$TMP/debootstrap.log" >&2; exit 1; }

  # 3. configure like the official python image, as far as useful
  # apt inside the image: the same mirrors as the host (deb822), same tolerance for snapshot dates
  {
    printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$MIRROR" "$SUITE" "$SUITE"
    if [ -n "$SECURITY_MIRROR" ]; then
      printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$SECURITY_MIRROR" "$SUITE"
    fi
  } > "$R/etc/apt/sources.list.d/debian.sources"
  : > "$R/etc/apt/sources.list"
  printf 'Acquire::Check-Valid-Until "false";\nAcquire::Check-Date "false";\n' > "$R/etc/apt/apt.conf.d/99standin-snapshot-dates"
  printf 'APT::Install-Recommends "false";\n' > "$R/etc/apt/apt.conf.d/99standin-no-recommends"
  # host CAs: extra local CAs (survive update-ca-certificates) + the host bundle verbatim
  mkdir -p "$R/usr/local/share/ca-certificates"
  cp -a /usr/local/share/ca-certificates/. "$R/usr/local/share/ca-certificates/" 2>/dev/null || true
  cp /etc/resolv.conf "$R/etc/resolv.conf"      # only for the chroot apt run below
  printf '#!/bin/sh\nexit 101\n' > "$R/usr/sbin/policy-rc.d"; chmod +x "$R/usr/sbin/policy-rc.d"
  mount -t proc proc "$R/proc"
  log "apt-get upgrade (security/updates) + update-ca-certificates in chroot"
  chroot "$R" /bin/sh -ec '
    export DEBIAN_FRONTEND=noninteractive LC_ALL=C
    apt-get update -qq
    apt-get -y -qq -o Dpkg::Options::=--force-confold dist-upgrade
    update-ca-certificates >/dev/null
    apt-get clean
  ' >"$TMP/chroot.log" 2>&1 || { tail -n 30 "$TMP/chroot.log" >&2; exit 1; }
  umount "$R/proc"
  cp /etc/ssl/certs/ca-certificates.crt "$R/etc/ssl/certs/ca-certificates.crt"
  rm -f "$R/usr/sbin/policy-rc.d" "$R/etc/resolv.conf" "$R"/usr/lib/python3*/EXTERNALLY-MANAGED
  ln -sf /usr/bin/python3 "$R/usr/local/bin/python"
  ln -sf /usr/bin/python3 "$R/usr/local/bin/python3"
  ln -sf /usr/bin/pip3 "$R/usr/local/bin/pip"
  ln -sf /usr/bin/pip3 "$R/usr/local/bin/pip3"
  : > "$R/etc/hostname"
  rm -rf "$R"/var/lib/apt/lists/* "$R"/var/cache/apt/*.bin "$R"/var/cache/apt/archives/*.deb \
         "$R"/var/log/*.log "$R"/var/log/apt/* "$R"/tmp/* "$R"/root/.cache
  find "$R/usr/lib" -name __pycache__ -type d -prune -exec rm -rf {} + 2>/dev/null || true
  # 4. cache the finished rootfs
  log "writing $ROOTFS_TAR"
  tar --numeric-owner --xattrs -C "$R" -cf "$ROOTFS_TAR.part" .
  mv "$ROOTFS_TAR.part" "$ROOTFS_TAR"
  for old in "$CACHE_DIR"/rootfs-standin-python-"$SUITE"-"$ARCH"-*.tar; do   # drop stale rootfs caches
    [ "$old" = "$ROOTFS_TAR" ] || rm -f "$old"
  done
else
  log "using cached rootfs $ROOTFS_TAR"
fi

# 5. import (skipped when the image already carries this rootfs key)
PYVER="$(tar -xOf "$ROOTFS_TAR" ./var/lib/dpkg/status | awk '/^Package: python3.11-minimal$/{f=1} f&&/^Version:/{print $2; exit}')"
PYVER="${PYVER%%-*}"
TAG="3.11-slim-$SUITE"
REF="$IMAGE:$TAG"
have="$(docker image inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$REF" 2>/dev/null | sed -n 's/^STANDIN_KEY=//p' || true)"
if [ "${REBUILD:-0}" != 1 ] && [ "$have" = "$ROOTFS_KEY" ]; then
  log "image $REF already up to date ($ROOTFS_KEY)"
else
  log "docker import -> $REF"
  docker import \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "ENV PYTHON_VERSION=$PYVER" \
    --change "ENV STANDIN_KEY=$ROOTFS_KEY" \
    --change 'CMD ["python3"]' \
    --message "stand-in for python:3.11-slim ($SUITE, debootstrap minbase)" \
    "$ROOTFS_TAR" "$REF" >/dev/null
fi
docker tag "$REF" "$IMAGE:3.11-slim"
echo "$REF"
