#!/usr/bin/env bash
# vpd set-up: system packages (apt or dnf) + a virtualenv with vpd installed.
# Idempotent: a second run checks, finds everything in place, and changes nothing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="${VPD_VENV:-$here/.venv}"
min_libvirt=11
min_qemu=10

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Services must not start at install time when there is no init system to own
# them (containers, CI): vpd starts its daemons itself, inside lab hosts.
no_service_start_at_install() {
  if [ "$(ps -o comm= -p 1 2>/dev/null)" != "systemd" ] && [ ! -x /usr/sbin/policy-rc.d ]; then
    log "no systemd: adding /usr/sbin/policy-rc.d so packages do not start services"
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod 755 /usr/sbin/policy-rc.d
  fi
}

# firewalld is installed for lab hosts only (`vpd lab up --firewall firewalld`
# runs it inside them on a private D-Bus). Where systemd would start and enable
# it on the machine itself, mask it first; a firewalld already there is left alone.
keep_firewalld_off_the_machine() {
  if [ ! -e /usr/sbin/firewalld ] && [ "$(ps -o comm= -p 1 2>/dev/null)" = "systemd" ]; then
    log "masking firewalld.service: vpd runs firewalld only inside lab hosts"
    as_root systemctl mask firewalld.service >/dev/null
  fi
}

# Cluster daemons must never run on the machine itself: under systemd, mask them
# before the packages can enable them (a no-op where they are already installed).
keep_cluster_off_the_machine() {
  if [ ! -e /usr/sbin/corosync ] && [ "$(ps -o comm= -p 1 2>/dev/null)" = "systemd" ]; then
    log "masking corosync, pacemaker and pcsd: vpd runs them only inside lab hosts"
    as_root systemctl mask corosync.service pacemaker.service pcsd.service pcsd-ruby.service >/dev/null
  fi
}

# Debian 12: libvirt/QEMU/seabios come from bookworm-backports, derived from the
# machine's own apt sources (same URIs, same keyring), never a hard-coded mirror.
debian_backports_source() {
  local target=/etc/apt/sources.list.d/vpd-bookworm-backports.sources
  [ -f "$target" ] && return 0
  if grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null; then
    return 0
  fi
  local uri="" keyring=""
  # deb822 files first: the stanza whose Suites contain "bookworm".
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    read -r uri keyring < <(awk '
      BEGIN{RS=""; FS="\n"}
      {
        u=""; s=""; k=""; t=""
        for (i=1;i<=NF;i++) {
          if ($i ~ /^URIs:/)      { sub(/^URIs:[ \t]*/,"",$i); split($i,a," "); u=a[1] }
          if ($i ~ /^Suites:/)    { s=$i }
          if ($i ~ /^Signed-By:/) { sub(/^Signed-By:[ \t]*/,"",$i); k=$i }
          if ($i ~ /^Types:/)     { t=$i }
        }
        if (t ~ /deb( |$)/ && s ~ /(^|[ \t])bookworm([ \t]|$)/ && u != "") { print u, k; exit }
      }' "$f") || true
    [ -n "$uri" ] && break
  done
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1=="deb" && $0 ~ / bookworm / { for(i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
  fi
  [ -n "$uri" ] || die "cannot find a bookworm apt source to derive bookworm-backports from; add one and re-run"
  log "adding bookworm-backports from $uri"
  {
    echo "Types: deb"
    echo "URIs: $uri"
    echo "Suites: bookworm-backports"
    echo "Components: main"
    [ -n "$keyring" ] && echo "Signed-By: $keyring"
  } | as_root tee "$target" >/dev/null
  apt_updated=""
}

# Storage (issue 6): the iscsi-direct pool driver (userspace initiator) and qemu-block-extra
# (QEMU's libiscsi block driver for <disk type='network'> iSCSI LUNs). libvirtd loads storage
# drivers when it starts, so they must be installed before any lab host boots.
apt_pkgs_backports=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libvirt-dev
  qemu-system-x86 qemu-utils seabios libvirt-daemon-driver-storage-iscsi-direct qemu-block-extra)
# libc6-dev (only a Recommends of gcc): libc.a for the lab guest's static vpd-dirtier.
apt_pkgs=(pkg-config gcc libc6-dev python3-venv dnsmasq-base iptables iproute2 openssh-server openssh-client
  nftables linux-image-cloud-amd64 busybox-static cpio gzip e2fsprogs util-linux procps psmisc
  firewalld dbus-daemon virtinst tgt
  strace
  pacemaker pacemaker-cli-utils corosync pcs resource-agents fence-agents
  chromium
  osinfo-db xorriso mmdebstrap)
# Containers (issue 15, Práctica 1 §3): Incus, LXD's maintained successor. incus-base has the
# daemon (/usr/libexec/incus/incusd) and the client; bookworm has it only in backports. It must be
# installed before any lab host boots: lab hosts see /usr and /etc through overlays of the machine's.
# vpd starts incusd itself (inside lab hosts, with a preseed), never the package's service.
apt_pkgs_containers=(incus-base xz-utils)
# The HA cluster packages (Práctica 7) are for lab hosts only: their daemons run
# inside them (`vpd cluster create`); on the machine itself nothing may start them
# (policy-rc.d above; with systemd, see keep_cluster_off_the_machine).
# osinfo-db: `vm create --os-variant` reads its XML (memory, disk, bus and NIC model per OS);
# without it vpd falls back to a small built-in table of families. xorriso: a fast test reads the
# cloud-init seed vpd builds (with pycdlib) back with an independent tool; the bootable lab ISOs
# of issue 14 §5 will be made with it.
# chromium: the web console's browser tests drive Debian's Chromium headless (Playwright's
# own browser download needs the internet).

apt_missing() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
  done
}

setup_apt() {
  . /etc/os-release
  local bp=()
  no_service_start_at_install
  keep_firewalld_off_the_machine
  keep_cluster_off_the_machine
  if [ "${VERSION_CODENAME:-}" = "bookworm" ]; then
    debian_backports_source
    bp=(-t bookworm-backports)
  fi
  local missing_bp missing
  missing_bp=$(apt_missing "${apt_pkgs_backports[@]}")
  missing=$(apt_missing "${apt_pkgs[@]}" "${apt_pkgs_containers[@]}")
  # Installed but too old (e.g. bookworm's own QEMU 7.2): upgrade from backports.
  if [ -z "$missing_bp" ] && ! versions_ok quiet; then missing_bp="${apt_pkgs_backports[*]}"; fi
  if [ -n "$missing_bp$missing" ]; then
    log "installing: $(echo $missing_bp $missing)"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    # Another install may hold the dpkg lock (several set-ups on one machine): wait for it.
    # shellcheck disable=SC2086
    [ -z "$missing_bp" ] || as_root apt-get install -y -qq -o DPkg::Lock::Timeout=900 "${bp[@]}" $missing_bp >/dev/null
    # shellcheck disable=SC2086
    [ -z "$missing" ] || as_root apt-get install -y -qq -o DPkg::Lock::Timeout=900 "${bp[@]}" $missing >/dev/null
  else
    log "system packages: all present"
  fi
}

setup_dnf() {
  local pkgs=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-client libvirt-devel qemu-kvm
    qemu-img dnsmasq iptables-nft iproute openssh-server openssh-clients nftables kernel-core
    busybox cpio gzip e2fsprogs util-linux procps-ng psmisc pkgconf-pkg-config gcc glibc-static python3-devel
    incus xz firewalld dbus-daemon virt-install pacemaker corosync pcs resource-agents fence-agents-all chromium
    osinfo-db xorriso)
  local missing=() p
  keep_firewalld_off_the_machine
  keep_cluster_off_the_machine
  for p in "${pkgs[@]}"; do rpm -q "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing: ${missing[*]}"
    as_root dnf install -y -q "${missing[@]}"
  else
    log "system packages: all present"
  fi
}

major() { sed -n 's/[^0-9]*\([0-9][0-9]*\)\..*/\1/p' | head -1; }

versions_ok() {
  local lv qv
  lv=$( (libvirtd --version 2>/dev/null || true) | major)
  qv=$( (qemu-system-x86_64 --version 2>/dev/null || true) | major)
  if [ -z "$lv" ] || [ "$lv" -lt "$min_libvirt" ] || [ -z "$qv" ] || [ "$qv" -lt "$min_qemu" ]; then
    if [ "${1:-}" != quiet ]; then
      die "vpd needs libvirt >= $min_libvirt and QEMU >= $min_qemu (found libvirt ${lv:-none}, QEMU ${qv:-none}).
  QEMU 7.2 corrupts guests migrated under TCG. On Debian 12 enable bookworm-backports and run:
    apt-get install -t bookworm-backports libvirt-daemon libvirt-daemon-driver-qemu qemu-system-x86 seabios
  On other systems upgrade to a release that ships these versions (Debian 13, Fedora 41+)."
    fi
    return 1
  fi
}

setup_venv() {
  local stamp="$venv/.vpd-installed" want
  want=$(cat "$here/pyproject.toml" | sha256sum | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$venv/bin/python" -c 'import vpd, libvirt' 2>/dev/null; then
    log "virtualenv $venv: up to date"
    return 0
  fi
  local py=${PYTHON:-python3}
  "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "vpd needs Python >= 3.11 ($py is older)"
  [ -x "$venv/bin/python" ] || { log "creating virtualenv $venv"; "$py" -m venv "$venv"; }
  log "installing vpd into $venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -e "$here[test]"
  echo "$want" > "$stamp"
}

# The web console's JavaScript (issue 13): pinned versions from the npm registry, installed
# here into a git-ignored directory that `vpd web` serves; never committed, never a CDN.
web_assets=(htmx.org@2.0.11 uplot@1.6.32 @xterm/xterm@6.0.0 @novnc/novnc@1.7.0)
web_vendor="$here/src/vpd/web/static/vendor"

setup_web_assets() {
  local stamp="$web_vendor/.vpd-assets" want="${web_assets[*]}"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -d "$web_vendor/node_modules" ]; then
    log "web assets: up to date"
    return 0
  fi
  if ! command -v npm >/dev/null 2>&1; then
    # Only when there is none: a node/npm already installed (e.g. NodeSource's) is kept.
    log "installing npm"
    if command -v apt-get >/dev/null 2>&1; then
      DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq -o DPkg::Lock::Timeout=900 npm >/dev/null
    else
      as_root dnf install -y -q nodejs npm
    fi
  fi
  log "installing web assets: $want"
  rm -rf "$web_vendor/node_modules"
  mkdir -p "$web_vendor"
  npm install --prefix "$web_vendor" --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
    "${web_assets[@]}" >/dev/null
  echo "$want" > "$stamp"
}

# The Debian test guest (`vm create --debian-guest`, vm/debian_image.py), built from the machine's
# own apt sources with mmdebstrap: about 1.5 min the first time, then a cache hit (a hash) until its
# recipe changes. Only Debian/Ubuntu machines have the sources to build it from.
setup_debian_guest() {
  if ! command -v apt-get >/dev/null 2>&1; then
    log "Debian test guest: skipped (built from apt sources; this machine has none)"
    return 0
  fi
  as_root "$venv/bin/python" -m vpd.vm.debian_image
}

main() {
  if command -v apt-get >/dev/null 2>&1; then setup_apt
  elif command -v dnf >/dev/null 2>&1; then setup_dnf
  else die "unsupported system: need apt-get (Debian/Ubuntu) or dnf (Fedora/RHEL)"; fi
  versions_ok
  setup_venv
  setup_web_assets
  setup_debian_guest
  log "ready: libvirt $(libvirtd --version | awk '{print $NF}'), $(qemu-system-x86_64 --version | head -1)"
}

main "$@"
