#!/usr/bin/env bash
# Installs everything the server and its tests need on a fresh Debian 12 machine (idempotent).
#  - Debian packages: mmdebstrap (builds the Asterisk chroot), sip-tester (sipp), baresip, chromium
#  - a Debian sid chroot holding Asterisk 22, cached OUTSIDE the repo in $IVR_CACHE (default /var/cache/ivr)
#  - a Python virtualenv in .venv with the project and its test extras
# Slow steps are cached: the chroot is built once per machine (~1 min), apt and pip are no-ops when present.
set -euo pipefail

IVR_CACHE=${IVR_CACHE:-/var/cache/ivr}
ROOT=${IVR_ASTERISK_ROOT:-$IVR_CACHE/asterisk-sid}
HERE=$(cd "$(dirname "$0")/.." && pwd)
WITH_BROWSER=${IVR_WITH_BROWSER:-1}

die() { echo "install: ERROR: $*" >&2; exit 1; }
say() { echo "install: $*"; }

[ "$(id -u)" = 0 ] || die "run as root (apt-get and chroot need it)"
[ -r /etc/debian_version ] || die "this script supports Debian 12 (bookworm); /etc/debian_version not found"
command -v python3 >/dev/null || die "python3 (3.11) is required"
python3 -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 11) else 1)' \
  || die "Python >= 3.11 is required, found $(python3 -V 2>&1)"

# prometheus: only for promtool (checks the alert rules); shellcheck: checks the docker entrypoint
pkgs=(mmdebstrap sip-tester baresip-core curl zstd prometheus shellcheck)
[ "$WITH_BROWSER" = 1 ] && pkgs+=(chromium)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "apt-get install ${missing[*]}"
  apt-get update -qq || die "apt-get update failed (is the Debian mirror reachable?)"
  # never let a package start its daemon here (prometheus would listen on :9090)
  prc_created=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d; prc_created=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || { [ $prc_created = 1 ] && rm -f /usr/sbin/policy-rc.d; die "apt-get install ${missing[*]} failed"; }
  [ $prc_created = 1 ] && rm -f /usr/sbin/policy-rc.d
fi

# Asterisk's French core sounds (Canadian French, gsm): a caller who picks French hears French prompts
CHROOT_EXTRA="asterisk-core-sounds-fr,asterisk-core-sounds-fr-gsm"
if [ ! -f "$ROOT/.ready" ]; then
  say "building the Asterisk chroot in $ROOT (Debian sid, about a minute; cached afterwards)"
  mkdir -p "$(dirname "$ROOT")"
  ok=0
  for attempt in 1 2 3; do
    rm -rf "$ROOT.tmp"
    if mmdebstrap --quiet --variant=apt --include="asterisk,asterisk-moh-opsound-gsm,$CHROOT_EXTRA" \
        --aptopt='Acquire::Check-Valid-Until "false"' \
        --aptopt='APT::Install-Recommends "false"' --aptopt='Acquire::Retries "3"' \
        --dpkgopt=force-unsafe-io --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
        sid "$ROOT.tmp" http://deb.debian.org/debian; then ok=1; break; fi
    say "mmdebstrap attempt $attempt failed; retrying"
    sleep $((attempt * 3))
  done
  [ $ok = 1 ] || die "could not build the Debian sid chroot with asterisk (see mmdebstrap output above)"
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$ROOT.tmp/etc/hosts"
  echo 'nameserver 127.0.0.1' > "$ROOT.tmp/etc/resolv.conf"
  chroot "$ROOT.tmp" /usr/sbin/asterisk -V > "$ROOT.tmp/.ready" || die "asterisk in the chroot does not run"
  rm -rf "$ROOT"
  mv "$ROOT.tmp" "$ROOT"
fi
# a chroot cached before a package joined CHROOT_EXTRA gets it added (apt inside the chroot, with the host's
# resolver for the download only)
missing_extra=()
for p in ${CHROOT_EXTRA//,/ }; do
  [ -f "$ROOT/var/lib/dpkg/info/$p.list" ] || missing_extra+=("$p")
done
if [ ${#missing_extra[@]} -gt 0 ]; then
  say "adding ${missing_extra[*]} to the Asterisk chroot"
  cp "$ROOT/etc/resolv.conf" "$ROOT/etc/resolv.conf.ivr" && cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
  ok=0
  for attempt in 1 2 3; do
    if chroot "$ROOT" apt-get -o Acquire::Check-Valid-Until=false -o Acquire::Retries=3 -qq update 2>/dev/null \
       && chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get -o Acquire::Check-Valid-Until=false \
            -o APT::Install-Recommends=false -o Dpkg::Options::=--force-unsafe-io -y -qq install \
            "${missing_extra[@]}" >"$IVR_CACHE/chroot-apt.log" 2>&1; then ok=1; break; fi
    sleep $((attempt * 3))
  done
  mv "$ROOT/etc/resolv.conf.ivr" "$ROOT/etc/resolv.conf"
  [ $ok = 1 ] || cat "$IVR_CACHE/chroot-apt.log" >&2
  [ $ok = 1 ] || die "could not add ${missing_extra[*]} to the Asterisk chroot (is the Debian mirror reachable?)"
fi
say "asterisk: $(cat "$ROOT/.ready")"

VENV=${IVR_VENV:-$HERE/.venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" || die "python3 -m venv failed (install python3-venv)"
fi
stamp="$VENV/.installed-$(sha1sum "$HERE/pyproject.toml" | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  say "pip install -e .[test] into $VENV"
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null || die "pip upgrade failed"
  "$VENV/bin/pip" install -q -e "$HERE[test]" || die "pip install of the project failed"
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi
say "ready"
