#!/bin/bash
# A benchmark peer: the no-op of Teleport's SHIPPED v1 script
# (/usr/sbin/teleport-upgrade of the teleport-ent-updater package) on an apt
# host, RECONSTRUCTED from the account of that script in
# /work/shared/reference/teleport-v1-updater.md ("What Teleport's shipped v1
# script really does"). The script itself is not available on this machine
# (no registry or mirror it can reach carries it), so this is not it: it
# does what that account says a run does, in the order it says, with the
# processes it says, and nothing else:
#
#   1. the configuration directory and the environment
#      (TELEPORT_UPGRADE_CONFIG, TELEPORT_UPGRADE_STATE);
#   2. the hold, (re)applied on every run before anything else:
#      `apt-mark hold <package>`;
#   3. the version server's answers, cached 30 minutes in
#      <state>/state-target-version and <state>/state-critical: with the
#      cache warm no request is made; cold, curl /version and /critical and
#      write the cache;
#   4. the schedule (windows as "<start> <stop>" lines, `nop` stands down);
#   5. the installed version (dpkg-query);
#   6. compare: equal is nothing to do.
#
# Like bench-v1-baseline.sh (the lean lower bound, which never holds and
# never caches), files are read with bash builtins; the processes are
# apt-mark, dpkg-query and, cold, curl twice.
#
# Usage: bench-v1-shipped.sh [--config-dir DIR] [--state-dir DIR] [--root DIR]
#   --root   an alternate root: dpkg-query uses its database (and APT_CONFIG,
#            set by the caller, points apt-mark there)
# Exit: 0 decided, 1 no target, 2 usage.
set -uo pipefail

config_dir="${TELEPORT_UPGRADE_CONFIG:-/etc/teleport-upgrade.d}"
state_dir="${TELEPORT_UPGRADE_STATE:-/var/lib/teleport-upgrade}"
root=""
while (($#)); do
  case "$1" in
    --config-dir) config_dir="$2"; shift 2 ;;
    --state-dir) state_dir="$2"; shift 2 ;;
    --root) root="$2"; shift 2 ;;
    *) echo "usage: $0 [--config-dir DIR] [--state-dir DIR] [--root DIR]" >&2; exit 2 ;;
  esac
done
admindir="$root/var/lib/dpkg"

log() { echo "teleport-upgrade: $*" >&2; }

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
read_value "$config_dir/repository"; repository="${REPLY:-teleport}"
read_value "$config_dir/restart-mode"; restart_mode="${REPLY:-reload}"
[[ -n "$endpoint" ]] || { log "no endpoint"; exit 2; }
scheme=https
[[ "$insecure" == yes && "${endpoint%%[:/]*}" == localhost ]] && scheme=http
[[ "$insecure" == yes && "${endpoint%%[:/]*}" == 127.0.0.1 ]] && scheme=http

# 2. The hold, before anything else, on every run.
# (Under --root, the caller's APT_CONFIG points apt-mark and its dpkg there.)
apt-mark hold "$package" >/dev/null 2>&1 || log "cannot hold $package"

# 3. The version server's answers, cached for 30 minutes.
printf -v now '%(%s)T' -1
mkdir -p "$state_dir"
cache_age=-1
if [[ -r "$state_dir/state-target-version" ]]; then
  read -r cached_at target <"$state_dir/state-target-version"
  read -r _ critical <"$state_dir/state-critical" 2>/dev/null || critical=no
  cache_age=$((now - cached_at))
fi
if ((cache_age < 0 || cache_age >= 1800)); then
  base="$scheme://$endpoint"
  target="$(curl -fsS --max-time 10 "$base/version")" || { log "cannot read $base/version"; exit 1; }
  target="${target%$'\n'}"
  target="${target#v}"
  critical="$(curl -fsS --max-time 10 "$base/critical" || echo no)"
  critical="${critical%$'\n'}"
  echo "$now $target" >"$state_dir/state-target-version"
  echo "$now $critical" >"$state_dir/state-critical"
fi
log "target $target, critical $critical (repository $repository, restart-mode $restart_mode)"

# 4. The schedule.
windows=()
if [[ -r "$config_dir/schedule" ]]; then
  while IFS= read -r line || [[ -n "$line" ]]; do
    [[ "$line" == "#"* || -z "${line//[[:space:]]/}" ]] && continue
    [[ "$line" == nop ]] && { log "nop: standing down"; exit 0; }
    windows+=("$line")
  done <"$config_dir/schedule"
fi

# 5. The installed version; 6. compare.
installed="$(dpkg-query --admindir="$admindir" -W -f '${Version}' "$package" 2>/dev/null)"
if [[ "$installed" == "$target" ]]; then
  log "$package is up to date ($installed)"
  exit 0
fi
in_window=no
for w in "${windows[@]}"; do
  read -r start stop <<<"$w"
  ((start < now && now < stop)) && in_window=yes
done
log "update due: $installed -> $target (critical $critical, in window $in_window)"
exit 0
