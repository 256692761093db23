#!/bin/bash
# The benchmark's baseline: what Teleport's bash updater (Managed Updates v1,
# /usr/sbin/teleport-upgrade) does to reach the decision of one `run` on an
# apt host (or, with --rpm-root, a yum/dnf or zypper host), written from /work/shared/reference/teleport-v1-updater.md:
#
#   1. read the configuration directory (one value per file; lines starting
#      with "# " and blank lines ignored, whitespace trimmed);
#   2. read the schedule; the single word `nop` means stand down;
#   3. curl <endpoint>/version (failure: exit 1) and <endpoint>/critical
#      (failure: not critical), https unless insecure=yes on localhost;
#   4. query dpkg (rpm on yum/dnf and zypper hosts) for the installed
#      version of the package;
#   5. compare: equal means nothing to do; else critical, inside a window
#      (start < now < stop), or unhealthy twice (the mark-unhealthy marker)
#      means update; unhealthy once writes the marker; otherwise wait.
#
# It stops at the decision: the benchmark uses it for the no-op case (the
# agent already at the target), where v1 does exactly this much. It is
# deliberately lean: files are read with bash builtins and the clock with
# printf's %(%s)T, so that the only processes started are the ones v1 cannot
# avoid (curl twice, dpkg-query or rpm once). That makes it a lower bound of what v1
# costs, and the comparison conservative for the Rust updater.
#
# Usage: bench-v1-baseline.sh [--config-dir DIR] [--admindir DIR | --rpm-root DIR [--rpm-dbpath P]]
#   --config-dir  default $TELEPORT_UPGRADE_CONFIG or /etc/teleport-upgrade.d
#   --admindir    dpkg's database, default /var/lib/dpkg
#   --rpm-root    an rpm host's root: the installed version comes from
#                 `rpm --root DIR [--dbpath P] -q --qf '%{VERSION}' PACKAGE`
#                 (the rpm database's counterpart of dpkg-query's ${Version})
# Exit: 0 decided (nothing to do, wait, update due), 1 no target, 2 usage.
set -uo pipefail

config_dir="${TELEPORT_UPGRADE_CONFIG:-/etc/teleport-upgrade.d}"
admindir=/var/lib/dpkg
rpm_root=""
rpm_db=()
while (($#)); do
  case "$1" in
    --config-dir) config_dir="$2"; shift 2 ;;
    --admindir) admindir="$2"; shift 2 ;;
    --rpm-root) rpm_root="$2"; shift 2 ;;
    --rpm-dbpath) rpm_db=(--dbpath "$2"); shift 2 ;;
    *) echo "usage: $0 [--config-dir DIR] [--admindir DIR | --rpm-root DIR [--rpm-dbpath P]]" >&2; exit 2 ;;
  esac
done

log() { echo "teleport-upgrade: $*" >&2; }

# One value per file, as v1 reads it: "# " comments and blank lines ignored,
# surrounding whitespace trimmed. Sets REPLY ("" when the file is missing).
read_value() {
  REPLY=""
  local line
  [[ -r "$1" ]] || return 0
  while IFS= read -r line || [[ -n "$line" ]]; do
    [[ "$line" == "# "* ]] && continue
    line="${line#"${line%%[![:space:]]*}"}"
    line="${line%"${line##*[![:space:]]}"}"
    [[ -z "$line" ]] && continue
    REPLY="$line"
    return 0
  done <"$1"
}

read_value "$config_dir/endpoint"; endpoint="$REPLY"
read_value "$config_dir/package"; package="${REPLY:-teleport-ent}"
read_value "$config_dir/insecure"; insecure="$REPLY"
if [[ -z "$endpoint" ]]; then
  log "no endpoint configured in $config_dir/endpoint"
  exit 2
fi
scheme=https
proto="=https"
if [[ "$insecure" == yes ]]; then
  case "${endpoint%%[:/]*}" in
    localhost | 127.0.0.1) scheme=http; proto="=http" ;;
    *) log "insecure=yes is honoured for localhost only"; exit 2 ;;
  esac
fi

# The schedule: `nop`, or "<start> <stop>" per line after a comment header.
schedule_file="$config_dir/schedule"
windows=()
stand_down=no
if [[ -r "$schedule_file" ]]; then
  while IFS= read -r line || [[ -n "$line" ]]; do
    [[ "$line" == "#"* || -z "${line//[[:space:]]/}" ]] && continue
    if [[ "$line" == nop ]]; then stand_down=yes; break; fi
    windows+=("$line")
  done <"$schedule_file"
fi
if [[ $stand_down == yes ]]; then
  log "schedule is nop: standing down"
  exit 0
fi
log "read the maintenance schedule: ${#windows[@]} window(s)"

# The version server.
base="$scheme://$endpoint"
if ! target="$(curl -fsS --proto "$proto" --max-time 10 "$base/version")"; then
  log "cannot read $base/version"
  exit 1
fi
target="${target%$'\n'}"
target="${target#v}"
critical="$(curl -fsS --proto "$proto" --max-time 10 "$base/critical" || echo no)"
critical="${critical%$'\n'}"
case "${critical,,}" in yes | true) critical=yes ;; *) critical=no ;; esac
log "target $target, critical $critical"
if [[ "$target" == none ]]; then
  log "no target version: nothing to do"
  exit 0
fi

# The installed version.
if [[ -n "$rpm_root" ]]; then
  installed="$(rpm --root "$rpm_root" "${rpm_db[@]}" -q --qf '%{VERSION}' "$package" 2>/dev/null)"
else
  installed="$(dpkg-query --admindir="$admindir" -W -f '${Version}' "$package" 2>/dev/null)"
fi
log "installed $package $installed"

# The unhealthy marker is consumed by every run that gets this far.
marker="$config_dir/mark-unhealthy"
had_marker=no
if [[ -e "$marker" ]]; then
  had_marker=yes
  rm -f "$marker"
fi
if [[ "$installed" == "$target" ]]; then
  log "$package is up to date ($installed)"
  exit 0
fi

printf -v now '%(%s)T' -1
in_window=no
future_window=no
for w in "${windows[@]}"; do
  read -r start stop <<<"$w"
  ((stop > now)) && future_window=yes
  if ((start < now && now < stop)); then in_window=yes; fi
done
if [[ $critical == yes || $in_window == yes ]]; then
  log "update due: $installed -> $target"
elif [[ $future_window == no ]]; then
  if [[ $had_marker == yes ]]; then
    log "unhealthy twice: update due: $installed -> $target"
  else
    : >"$marker"
    log "unhealthy: marked, waiting for the next run"
  fi
else
  log "waiting for the next window"
fi
exit 0
