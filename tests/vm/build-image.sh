#!/usr/bin/env bash
# Build (once) and cache the base image of the burstd test VM: a Debian kernel and a
# Debian bookworm minbase root file system with systemd, packed as a gzip'd newc cpio
# archive that the kernel unpacks and uses as its root directly (rdinit=/sbin/init).
#
# Output (stdout, last line): the cache directory, holding
#   vmlinuz          the kernel
#   base.cpio        the root file system as an initramfs (uncompressed: under TCG the
#                    guest inflates gzip slower than it copies; measured ~5 s per boot)
#   kernel-version   the kernel's release string
# Progress goes to stderr. Later runs with the same inputs find the cache and take seconds.
#
# Cache: /var/cache/burstd-vm/<key>/, key = sha256 of this script's content, the suite,
# the package list and the kernel package + version (BURSTD_VM_CACHE overrides the root).
set -euo pipefail

SUITE=bookworm
# The Debian archive: BURSTD_VM_MIRROR, or the one this machine's apt already uses for the
# suite (its sources list; see apt-mirror.sh). Not part of the cache key: any mirror of the
# suite gives the same packages.
MIRROR=${BURSTD_VM_MIRROR:-}
# Kept small on purpose: every MB is unpacked into guest RAM at each boot. dbus: a real
# systemd host has the system bus, and systemd-run (used by the sandbox check) needs it.
PACKAGES=systemd,systemd-sysv,udev,dbus,curl,procps,iproute2
# Installed after debootstrap (its base stage cannot configure podman's dependencies): the
# container checks' runtime and the image's busybox.
EXTRA_PACKAGES="podman busybox-static"
CACHE_ROOT=${BURSTD_VM_CACHE:-/var/cache/burstd-vm}

log() { printf '[build-image %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap, chroot); try: sudo $0"
if [[ -z $MIRROR ]]; then
    MIRROR=$(bash "$(dirname "${BASH_SOURCE[0]}")/apt-mirror.sh" /etc/apt "$SUITE") \
        || die "no Debian mirror for $SUITE in this machine's apt sources; set BURSTD_VM_MIRROR"
fi

# --- host tools ------------------------------------------------------------------------
apt_updated=0
apt_update() {
    if [[ $apt_updated -eq 0 ]]; then
        log "apt-get update"
        timeout 300 apt-get update -qq >&2 || die "apt-get update failed"
        apt_updated=1
    fi
}
missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v cpio >/dev/null || missing+=(cpio)
if [[ ${#missing[@]} -gt 0 ]]; then
    apt_update
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq "${missing[@]}" >&2 \
        || die "could not install ${missing[*]}"
fi

# --- which kernel ----------------------------------------------------------------------
# The newest linux-image-6.1.0-N-amd64 that the meta package points at (falling back to
# the highest N that apt-cache search knows). Read from the local package lists, so a
# cached run needs no network; the lists are refreshed only when they know no kernel.
pick_kernel() {
    local pkg
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null \
        | grep -oE 'linux-image-6\.1\.0-[0-9]+-amd64' | sort -V | tail -n1 || true)
    if [[ -z $pkg ]]; then
        pkg=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' 2>/dev/null \
            | awk '{print $1}' | sort -V | tail -n1 || true)
    fi
    printf '%s' "$pkg"
}
KPKG=$(pick_kernel)
if [[ -z $KPKG ]]; then
    apt_update
    KPKG=$(pick_kernel)
fi
[[ -n $KPKG ]] || die "no linux-image-6.1.0-*-amd64 package known to apt"
KVER=$(apt-cache policy "$KPKG" | awk '/Candidate:/ {print $2}')
[[ -n $KVER && $KVER != "(none)" ]] || die "no candidate version for $KPKG"

# --- cache key -------------------------------------------------------------------------
KEY=$( { cat "${BASH_SOURCE[0]}"; printf '%s\n' "$SUITE" "$PACKAGES" "$KPKG" "$KVER"; } \
    | sha256sum | cut -c1-16)
OUT=$CACHE_ROOT/$KEY
if [[ -s $OUT/vmlinuz && -s $OUT/base.cpio && -s $OUT/kernel-version ]]; then
    log "cached: $OUT ($KPKG $KVER)"
    printf '%s\n' "$OUT"
    exit 0
fi

mkdir -p "$CACHE_ROOT"
# One builder at a time; a second caller waits, then finds the cache.
exec 9>"$CACHE_ROOT/.lock"
timeout 1200 flock 9 || die "timed out waiting for $CACHE_ROOT/.lock"
if [[ -s $OUT/vmlinuz && -s $OUT/base.cpio ]]; then
    printf '%s\n' "$OUT"
    exit 0
fi

T0=$(date +%s)
WORK=$(mktemp -d "$CACHE_ROOT/.build-$KEY.XXXXXX")
cleanup() { rm -rf --one-file-system "$WORK"; }
trap cleanup EXIT
log "building $OUT ($KPKG $KVER, suite $SUITE) in $WORK"

# --- kernel ----------------------------------------------------------------------------
log "downloading $KPKG=$KVER"
mkdir -p "$WORK/kernel"
if ! (cd "$WORK/kernel" && timeout 600 apt-get download -qq -o APT::Sandbox::User=root "$KPKG=$KVER" >&2); then
    # The lists may name a version the mirror no longer has: refresh and try once more.
    apt_update
    (cd "$WORK/kernel" && timeout 600 apt-get download -qq -o APT::Sandbox::User=root "$KPKG=$KVER" >&2) \
        || die "apt-get download $KPKG=$KVER failed"
fi
timeout 300 dpkg -x "$WORK"/kernel/*.deb "$WORK/kernel/x"
vmlinuz=$(find "$WORK/kernel/x/boot" -name 'vmlinuz-*' | head -n1)
[[ -n $vmlinuz ]] || die "no vmlinuz in $KPKG"
krel=${vmlinuz##*/vmlinuz-}
# cgroup v2 with the cpu controller and the serial console must be built in: the guest
# root has no kernel modules (they would add ~400 MB to every boot).
config=$WORK/kernel/x/boot/config-$krel
for opt in CONFIG_CGROUPS=y CONFIG_CGROUP_SCHED=y CONFIG_CFS_BANDWIDTH=y CONFIG_FAIR_GROUP_SCHED=y \
    CONFIG_SERIAL_8250_CONSOLE=y CONFIG_BLK_DEV_INITRD=y CONFIG_RD_GZIP=y CONFIG_UNIX=y; do
    grep -qx "$opt" "$config" || die "$KPKG lacks $opt (built-in) which the VM needs"
done

# --- root file system ------------------------------------------------------------------
ROOT=$WORK/root
log "debootstrap $SUITE minbase + $PACKAGES from $MIRROR (about 30 s)"
timeout 900 debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOT" "$MIRROR" \
    >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 30 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }

log "installing $EXTRA_PACKAGES into the guest"
# The host's apt resolves against the guest's dpkg status and downloads what is missing; the
# guest's dpkg installs it.
mkdir -p "$WORK/debs" "$ROOT/tmp/debs"
# shellcheck disable=SC2086
timeout 900 apt-get install -y -qq --download-only --no-install-recommends \
    -o Dir::State::status="$ROOT/var/lib/dpkg/status" -o Dir::Cache::archives="$WORK/debs" \
    $EXTRA_PACKAGES >"$WORK/extra.log" 2>&1 \
    || { tail -n 20 "$WORK/extra.log" >&2; die "downloading $EXTRA_PACKAGES failed"; }
cp "$WORK"/debs/*.deb "$ROOT/tmp/debs/"
mount -t proc proc "$ROOT/proc"
rc=0
chroot "$ROOT" /bin/sh -c 'DEBIAN_FRONTEND=noninteractive dpkg -i /tmp/debs/*.deb' >>"$WORK/extra.log" 2>&1 || rc=$?
umount "$ROOT/proc"
(( rc == 0 )) || { tail -n 30 "$WORK/extra.log" >&2; die "installing $EXTRA_PACKAGES in the guest failed"; }
rm -rf "$ROOT/tmp/debs"

log "configuring the guest"
echo burstd-vm >"$ROOT/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 burstd-vm\n::1 localhost\n' >"$ROOT/etc/hosts"
: >"$ROOT/etc/fstab"
# Root without a password: the VM has no network and lives for one test run.
sed -i 's/^root:[^:]*:/root::/' "$ROOT/etc/shadow"
# A fixed machine id: no first-boot logic (systemd-firstboot could prompt on the console).
printf '%s\n' "$(printf 'burstd-vm %s' "$KEY" | md5sum | cut -c1-32)" >"$ROOT/etc/machine-id"
ln -sf /lib/systemd/system/multi-user.target "$ROOT/etc/systemd/system/default.target"
# Units that slow the boot, wait for a network that is not there, or would print login
# prompts into the console we parse.
for unit in systemd-networkd-wait-online.service systemd-networkd.service \
    systemd-timesyncd.service systemd-firstboot.service \
    apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
    fstrim.timer man-db.timer systemd-tmpfiles-clean.timer \
    getty.target getty@tty1.service serial-getty@ttyS0.service console-getty.service \
    systemd-pstore.service systemd-journal-flush.service \
    proc-sys-fs-binfmt_misc.automount; do
    ln -sf /dev/null "$ROOT/etc/systemd/system/$unit"
done
# Podman for the container checks: the guest has no kernel modules (no overlayfs), so the
# vfs storage driver; its Docker-API socket (podman.socket) is what burstd follows.
mkdir -p "$ROOT/etc/containers"
printf '[storage]\ndriver = "vfs"\nrunroot = "/run/containers/storage"\ngraphroot = "/var/lib/containers/storage"\n' \
    >"$ROOT/etc/containers/storage.conf"
if [[ -e $ROOT/lib/systemd/system/podman.socket ]]; then
    mkdir -p "$ROOT/etc/systemd/system/sockets.target.wants"
    ln -sf /lib/systemd/system/podman.socket "$ROOT/etc/systemd/system/sockets.target.wants/podman.socket"
fi
# The journal stays in RAM (the root is RAM anyway) and does not echo to the console.
mkdir -p "$ROOT/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\nForwardToConsole=no\n' \
    >"$ROOT/etc/systemd/journald.conf.d/burstd-vm.conf"
[[ -L $ROOT/sbin/init || -e $ROOT/sbin/init ]] || die "no /sbin/init in the guest root"
[[ $(readlink -f "$ROOT/sbin/init") == */systemd ]] \
    || die "/sbin/init is not systemd: $(readlink -f "$ROOT/sbin/init")"
# Shrink what is unpacked at every boot.
rm -rf "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* \
    "$ROOT"/usr/share/locale/* "$ROOT"/var/cache/apt/* "$ROOT"/var/lib/apt/lists/* \
    "$ROOT"/var/log/*.log "$ROOT"/var/cache/debconf/*-old

log "packing the initramfs"
mkdir -p "$WORK/out"
(cd "$ROOT" && find . -mindepth 1 -print0 \
    | timeout 600 cpio --null -o -H newc -R 0:0 --quiet) >"$WORK/out/base.cpio"
cp "$vmlinuz" "$WORK/out/vmlinuz"
printf '%s\n' "$krel" >"$WORK/out/kernel-version"
printf 'package=%s\nversion=%s\nsuite=%s\npackages=%s %s\n' "$KPKG" "$KVER" "$SUITE" "$PACKAGES" "$EXTRA_PACKAGES" \
    >"$WORK/out/inputs"
rm -rf "$OUT"
mv "$WORK/out" "$OUT"
# Older keys are dead weight (~120 MB each).
find "$CACHE_ROOT" -mindepth 1 -maxdepth 1 -type d ! -name "$KEY" ! -name '.build-*' \
    -exec rm -rf --one-file-system {} +
log "done in $(( $(date +%s) - T0 )) s: $(du -sh "$OUT" | cut -f1) in $OUT"
printf '%s\n' "$OUT"
