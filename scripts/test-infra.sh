#!/usr/bin/env bash
# Install and start the local infrastructure the test-suite and CI need:
#   * a running Docker daemon (Debian's docker.io, started in the background)
#   * a local Python base image built with debootstrap (no registry pulls needed)
#   * Debian's docker-registry binary (tests start their own instances; the
#     system service is never left running)
#   * wrk and hyperfine (benchmarks)
#
# Idempotent and fast when everything is already in place.
#
# Environment:
#   MLDEPLOY_TEST_BASE_IMAGE  tag of the base image (default mldeploy-test/python:3.11-bookworm)
#   MLDEPLOY_DOCKERD_LOG      dockerd log file (default /tmp/dockerd.log)
#   MLDEPLOY_DOCKERD_FLAGS    extra/explicit dockerd flags; when set only these are tried
#   MLDEPLOY_DEBIAN_MIRROR    Debian mirror for debootstrap (default: read from apt's sources)
set -euo pipefail

export MLDEPLOY_TEST_BASE_IMAGE="${MLDEPLOY_TEST_BASE_IMAGE:-mldeploy-test/python:3.11-bookworm}"
BASE_IMAGE="$MLDEPLOY_TEST_BASE_IMAGE"
SUITE=bookworm
# Bump when the image recipe below changes: an image with another recipe label is rebuilt.
IMAGE_RECIPE=2
RECIPE_LABEL=org.mldeploy.test-base-recipe
DOCKERD_LOG="${MLDEPLOY_DOCKERD_LOG:-/tmp/dockerd.log}"
DOCKER_WAIT_S=60

log() { printf '[test-infra %3ds] %s\n' "$SECONDS" "$*" >&2; }
die() { printf '[test-infra] ERROR: %s\n' "$*" >&2; exit 1; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "must run as root (or have sudo)"
    SUDO=(sudo -E)
fi
as_root() { "${SUDO[@]}" "$@"; }

# --------------------------------------------------------------------------- apt
APT_UPDATED=0
POLICY_RC_D=/usr/sbin/policy-rc.d
POLICY_RC_D_OURS=0

cleanup() {
    if [ "$POLICY_RC_D_OURS" = 1 ]; then
        as_root rm -f "$POLICY_RC_D"
    fi
}
trap cleanup EXIT

pkg_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

# apt_install PKG... : install the missing ones (apt-get update at most once per run).
# Services are never started by the package scripts (policy-rc.d returns 101).
apt_install() {
    local missing=() p
    for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
    [ "${#missing[@]}" -eq 0 ] && return 0
    if [ ! -e "$POLICY_RC_D" ]; then
        printf '#!/bin/sh\n# temporary, written by mldeploy scripts/test-infra.sh\nexit 101\n' \
            | as_root tee "$POLICY_RC_D" >/dev/null
        as_root chmod 755 "$POLICY_RC_D"
        POLICY_RC_D_OURS=1
    fi
    if [ "$APT_UPDATED" = 0 ]; then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    log "apt-get install ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}" >/dev/null
}

# ------------------------------------------------------------------------ docker
docker_ok() { docker info >/dev/null 2>&1; }

DOCKERD_PID=""
# try_dockerd FLAGS... : start dockerd with FLAGS, return 0 once `docker info` answers.
try_dockerd() {
    log "starting dockerd $* (log: $DOCKERD_LOG)"
    {
        printf '\n===== %s dockerd %s\n' "$(date -Is)" "$*"
    } >>"$DOCKERD_LOG"
    # setsid + nohup: the daemon must outlive this script (and CI step shells).
    # (a simple command, not a shell function, so that $! is the daemon itself)
    "${SUDO[@]}" setsid nohup dockerd "$@" >>"$DOCKERD_LOG" 2>&1 </dev/null &
    DOCKERD_PID=$!
    local i
    for ((i = 0; i < DOCKER_WAIT_S * 2; i++)); do
        if docker_ok; then return 0; fi
        if ! kill -0 "$DOCKERD_PID" 2>/dev/null; then
            log "dockerd $* exited early; last log lines:"
            tail -n 5 "$DOCKERD_LOG" | sed 's/^/    /' >&2
            return 1
        fi
        sleep 0.5
    done
    log "dockerd $* did not answer within ${DOCKER_WAIT_S}s; stopping it"
    as_root kill "$DOCKERD_PID" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
    return 1
}

ensure_docker() {
    if docker_ok; then return 0; fi
    command -v dockerd >/dev/null 2>&1 || apt_install docker.io
    command -v docker >/dev/null 2>&1 || die "docker CLI missing after installing docker.io"
    # A stale pid file/socket from a dead daemon prevents a new start.
    if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid 2>/dev/null)" 2>/dev/null; then
        as_root rm -f /var/run/docker.pid
    fi
    if [ -n "${MLDEPLOY_DOCKERD_FLAGS:-}" ]; then
        # shellcheck disable=SC2086
        try_dockerd $MLDEPLOY_DOCKERD_FLAGS && return 0
        die "dockerd with MLDEPLOY_DOCKERD_FLAGS='$MLDEPLOY_DOCKERD_FLAGS' failed; see $DOCKERD_LOG"
    fi
    try_dockerd && return 0
    try_dockerd --iptables=false && return 0
    try_dockerd --iptables=false --storage-driver=vfs && return 0
    try_dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs && return 0
    die "could not start dockerd; see $DOCKERD_LOG"
}

# -------------------------------------------------------------------- base image
debian_mirror() {
    if [ -n "${MLDEPLOY_DEBIAN_MIRROR:-}" ]; then echo "$MLDEPLOY_DEBIAN_MIRROR"; return; fi
    local uri=""
    # deb822 sources: the first URIs: line that is not the security archive
    if compgen -G '/etc/apt/sources.list.d/*.sources' >/dev/null; then
        uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' \
            /etc/apt/sources.list.d/*.sources)
    fi
    # one-line style sources.list
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
        uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/) {
                  if ($i !~ /security/) { print $i; exit } break } }' /etc/apt/sources.list)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

ensure_base_image() {
    local have old_id=""
    if have=$(docker image inspect --format "{{index .Config.Labels \"$RECIPE_LABEL\"}}" "$BASE_IMAGE" 2>/dev/null); then
        [ "$have" = "$IMAGE_RECIPE" ] && return 0
        log "$BASE_IMAGE has recipe '${have}', want '$IMAGE_RECIPE': rebuilding"
        old_id=$(docker image inspect --format '{{.Id}}' "$BASE_IMAGE")
    fi
    apt_install debootstrap
    local mirror rootfs
    mirror=$(debian_mirror)
    rootfs=$(mktemp -d /tmp/mldeploy-rootfs.XXXXXX)
    # shellcheck disable=SC2064
    trap "as_root rm -rf '$rootfs'; cleanup" EXIT
    log "debootstrap $SUITE from $mirror into $rootfs"
    as_root debootstrap --variant=minbase \
        --include=python3,python3-venv,python3-pip,ca-certificates \
        "$SUITE" "$rootfs" "$mirror" >/tmp/mldeploy-debootstrap.log 2>&1 \
        || { tail -n 20 /tmp/mldeploy-debootstrap.log >&2; die "debootstrap failed (log: /tmp/mldeploy-debootstrap.log)"; }

    log "trimming rootfs"
    as_root chroot "$rootfs" apt-get clean
    as_root rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/lib/dpkg/*-old \
        "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/root/.cache \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
        "$rootfs"/usr/share/lintian "$rootfs"/usr/share/linda
    # keep only the C/POSIX locale data
    if [ -d "$rootfs/usr/share/locale" ]; then
        as_root find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +
    fi
    as_root find "$rootfs/usr/lib/python3" "$rootfs/usr/lib/python3.11" -name __pycache__ -type d \
        -prune -exec rm -rf {} + 2>/dev/null || true
    # keep the image small for future apt-get installs in Dockerfiles, too
    printf 'path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\npath-exclude /usr/share/man/*\npath-exclude /usr/share/info/*\npath-exclude /usr/share/locale/*\n' \
        | as_root tee "$rootfs/etc/dpkg/dpkg.cfg.d/01-mldeploy-nodoc" >/dev/null
    as_root ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python"
    # Behave like the official python images: plain `pip install` into the system
    # interpreter is allowed (no PEP 668 "externally-managed-environment" error).
    as_root rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
    # Like the official python images, the base trusts only Debian's CA list: a
    # TLS-intercepting proxy's CA is NOT baked in, so builds must not need the network
    # (mldeploy installs from a host-built wheelhouse). Opt in for experiments with
    # MLDEPLOY_TEST_EXTRA_CA_DIR=/usr/local/share/ca-certificates.
    local extra_ca_dir="${MLDEPLOY_TEST_EXTRA_CA_DIR-}" n_ca=0
    if [ -n "$extra_ca_dir" ] && compgen -G "$extra_ca_dir/*.crt" >/dev/null; then
        as_root cp "$extra_ca_dir"/*.crt "$rootfs/usr/local/share/ca-certificates/"
        as_root chroot "$rootfs" update-ca-certificates >/dev/null 2>&1
        n_ca=$(find "$extra_ca_dir" -maxdepth 1 -name '*.crt' | wc -l)
        log "added $n_ca CA certificate(s) from $extra_ca_dir to the image trust store"
    fi
    # Docker manages these at run time
    as_root rm -f "$rootfs/etc/hostname"
    : | as_root tee "$rootfs/etc/resolv.conf" >/dev/null

    log "docker import -> $BASE_IMAGE"
    as_root tar --numeric-owner -C "$rootfs" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        --change "LABEL $RECIPE_LABEL=$IMAGE_RECIPE" \
        --message "mldeploy test base image: debootstrap $SUITE minbase + python3" \
        - "$BASE_IMAGE" >/dev/null
    as_root rm -rf "$rootfs"
    trap cleanup EXIT
    # drop the outdated image if nothing refers to it any more (no tags, no containers)
    if [ -n "$old_id" ] && [ "$(docker image inspect --format '{{len .RepoTags}}' "$old_id" 2>/dev/null)" = 0 ]; then
        docker rmi "$old_id" >/dev/null 2>&1 || true
    fi
}

# ---------------------------------------------------------------------- registry
# Never leave the packaged docker-registry service running: tests start their own
# instances on free ports. (policy-rc.d normally keeps apt from starting it.)
disable_registry_service() {
    if [ -d /run/systemd/system ]; then
        as_root systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
    elif [ -x /etc/init.d/docker-registry ]; then
        as_root /etc/init.d/docker-registry stop >/dev/null 2>&1 || true
        as_root update-rc.d docker-registry disable >/dev/null 2>&1 || true
    fi
}

# -------------------------------------------------------------------------- main
start=$SECONDS
# One apt transaction for everything that is missing (apt-get update only if needed).
pkgs=(docker-registry wrk hyperfine)
pkg_installed docker-registry && registry_was_installed=1 || registry_was_installed=0
if ! docker_ok && ! command -v dockerd >/dev/null 2>&1; then
    pkgs+=(docker.io debootstrap) # no docker yet -> no base image yet either
fi
apt_install "${pkgs[@]}"
[ "$registry_was_installed" = 1 ] || disable_registry_service
[ -x /usr/bin/docker-registry ] || die "/usr/bin/docker-registry missing"
ensure_docker
ensure_base_image

server_version=$(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?')
client_version=$(docker version --format '{{.Client.Version}}' 2>/dev/null || echo '?')
read -r image_id image_size < <(docker image inspect --format '{{.Id}} {{.Size}}' "$BASE_IMAGE")
echo "test-infra ready in $((SECONDS - start))s:"
echo "  docker:     server $server_version, client $client_version, driver $(docker info --format '{{.Driver}}' 2>/dev/null)"
echo "  base image: $BASE_IMAGE ${image_id:7:12} $((image_size / 1000000)) MB"
echo "  registry:   $(/usr/bin/docker-registry --version 2>/dev/null | head -n1)"
echo "  bench:      $(wrk --version 2>&1 | head -n1 | cut -c1-40); $(hyperfine --version)"
