# ---- begin packaging/maintscript-lib.sh (teleport-ent-updater) -------------
# Shared logic of the Debian maintainer scripts and the RPM scriptlets. It is
# pasted into each script at build time by scripts/build-packages (a script
# cannot source a file from the package: in postrm it is already gone).
# POSIX sh only, and no percent sign anywhere: the RPM spec would expand it
# as a macro.
#
# Rules (the same for dpkg and rpm):
#   install   daemon-reload, enable the timer and start it (systemd only)
#   upgrade   daemon-reload, try-restart the timer (systemd only); over
#             Teleport's own shell updater (same package name, older
#             version), take its timer over: see tu_take_over_timer
#   remove    stop and disable the timer; keep /etc/teleport-upgrade.d and
#             /var/lib/teleport-upgrade
#   purge     remove /var/lib/teleport-upgrade (dpkg only; RPM has no purge)
# The agent's own unit is never started, stopped or restarted here:
# that would cut the agent's sessions. Nothing here ever fails the package
# operation: without systemd (containers, chroots, image builds, dpkg --root)
# the runtime steps are skipped and the timer is only enabled on disk, so it
# starts at the next boot under systemd.

# dpkg --root ... --force-script-chrootless runs the scripts on the host with
# DPKG_ROOT pointing at the target root; everything must act inside it.
tu_root="${DPKG_ROOT:-}"
tu_timer=teleport-upgrade.timer
tu_state_dir="$tu_root/var/lib/teleport-upgrade"
# Left by a removal that disabled the timer, so that re-installing the package
# (dpkg: "configure" with an old version from the config-files state) enables
# it again like a first install.
tu_removed_mark="$tu_state_dir/.timer-disabled-by-package-removal"

tu_log() {
    echo "teleport-ent-updater: $*" >&2
}

tu_have_systemctl() {
    command -v systemctl >/dev/null 2>&1
}

# True only when systemd runs this very system: not inside a foreign root
# (DPKG_ROOT), not when systemd is absent (containers without it, sysvinit).
tu_systemd_running() {
    [ -z "$tu_root" ] && [ -d /run/systemd/system ] && tu_have_systemctl
}

# systemctl acting on unit files only (enable/disable). Works with or without
# a running systemd; --root keeps it inside DPKG_ROOT.
tu_unitfiles() {
    if [ -n "$tu_root" ]; then
        systemctl --root="$tu_root" "$@"
    else
        systemctl "$@"
    fi
}

tu_daemon_reload() {
    if tu_systemd_running; then
        systemctl daemon-reload || tu_log "warning: systemctl daemon-reload failed"
    fi
}

# First install, or re-install after a removal.
tu_install() {
    tu_daemon_reload
    if tu_have_systemctl; then
        tu_unitfiles enable "$tu_timer" || tu_log "warning: could not enable $tu_timer"
    else
        tu_log "systemctl not found: $tu_timer not enabled (the cron fallback in /etc/cron.d/teleport-upgrade runs the updater)"
    fi
    if tu_systemd_running; then
        systemctl start "$tu_timer" || tu_log "warning: could not start $tu_timer"
    fi
    rm -f "$tu_removed_mark" || :
}

# Teleport's own shell updater (package teleport-ent-updater, versioned like
# Teleport, e.g. 15.4.3) enables the timer as wanted by the agent's unit (a
# link in its .wants directory); ours is WantedBy=timers.target. The unit files themselves have the same
# names and were replaced by the package manager (same package). An enabled
# shell-updater timer is enabled again the way ours is, so that it keeps
# running when the agent is stopped; one the administrator had disabled
# stays disabled. Prints "1" when it took the timer over.
tu_take_over_timer() {
    tu_wants_dir="$tu_root/etc/systemd/system/teleport.service.wants"
    if [ -L "$tu_wants_dir/$tu_timer" ]; then
        rm -f "$tu_wants_dir/$tu_timer" || :
        rmdir "$tu_wants_dir" 2>/dev/null || :
        if tu_have_systemctl; then
            tu_unitfiles enable "$tu_timer" >&2 || tu_log "warning: could not enable $tu_timer"
        fi
        tu_log "took over $tu_timer from the shell updater (now enabled through timers.target)"
        echo 1
    fi
}

# Upgrade from an earlier version: pick up the new unit files and restart the
# timer only if it is running (an administrator's "disable"/"stop" stays).
tu_upgrade() {
    if [ -e "$tu_removed_mark" ]; then
        tu_install
        return 0
    fi
    tu_daemon_reload
    tu_took_over="$(tu_take_over_timer)"
    if tu_systemd_running; then
        if [ "$tu_took_over" = 1 ]; then
            systemctl restart "$tu_timer" || tu_log "warning: could not start $tu_timer"
        else
            systemctl try-restart "$tu_timer" || tu_log "warning: could not restart $tu_timer"
        fi
    fi
}

# Before the package's files go away (not on upgrade). A run of the updater
# that is in progress is not interrupted: it may be in the middle of a package
# transaction. "tu_remove nomark" (rpm): no removal mark, since rpm has no
# "removed but configured" state (an install after an erase is a first
# install), and a state directory made only for the mark would be left
# behind by the erase.
tu_remove() {
    if tu_systemd_running; then
        systemctl stop "$tu_timer" || tu_log "warning: could not stop $tu_timer"
    fi
    if tu_have_systemctl; then
        tu_unitfiles disable "$tu_timer" || tu_log "warning: could not disable $tu_timer"
    fi
    if [ "${1:-}" != nomark ] && mkdir -p "$tu_state_dir" 2>/dev/null; then
        : > "$tu_removed_mark" || :
    fi
}

# After the package's files are gone: forget the units and the drop-in.
tu_after_remove() {
    tu_daemon_reload
}

# dpkg --purge: the updater's state goes; /etc/teleport-upgrade.d stays (its
# files belong to the operator and the agent; dpkg itself removes the
# package's own conffiles).
tu_purge() {
    rm -rf "$tu_state_dir" || tu_log "warning: could not remove $tu_state_dir"
}
# ---- end packaging/maintscript-lib.sh --------------------------------------
