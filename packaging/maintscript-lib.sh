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
#   purge     remove /var/lib/teleport-upgrade (dpkg only; RPM has no purge);
#             a configuration file the operator edited (and the ones that
#             came from Teleport's package) stays: see tu_keep_edited_conffiles
#   back      Teleport's package installed over ours (a downgrade of the
#             same name): its timer, drop-in and no cron file of ours, see
#             tu_hand_back
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
# Copies of configuration files that dpkg --purge would delete although the
# operator edited them (tu_keep_edited_conffiles), put back after it.
tu_kept_dir="$tu_state_dir/kept-conffiles"
# Copies of /etc/teleport-upgrade.d made before an rpm upgrade (tu_rpm_pre),
# put back by tu_rpm_posttrans when the old package's erase removed them.
tu_migrating_dir="$tu_state_dir/migrating-config"
tu_config_dir="$tu_root/etc/teleport-upgrade.d"
# Teleport's own package puts its agent drop-in here (a conffile, so dpkg
# keeps it when ours replaces that package), where it overrides ours of the
# same name under /usr/lib.
tu_v1_dropin="$tu_root/etc/systemd/system/teleport.service.d/teleport-upgrader-env.conf"
tu_v1_dropin_aside="$tu_v1_dropin.disabled-by-teleport-ent-updater"
tu_cron="$tu_root/etc/cron.d/teleport-upgrade"
# The md5 of the cron file as shipped (scripts/build-packages fills it in).
tu_cron_md5="@CRON_MD5@"

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
    tu_take_over_dropin
    rm -rf "$tu_kept_dir" || :
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

# Teleport's drop-in (TELEPORT_EXT_UPGRADER_VERSION and the shell
# updater's ExecStopPost hook) under /etc overrides ours: set it aside,
# renamed (systemd reads only *.conf there; an edit is kept), so that the
# agent's unit gets ours. tu_hand_back puts it back. A drop-in without
# TELEPORT_EXT_UPGRADER_VERSION is the administrator's and stays.
tu_take_over_dropin() {
    if [ -f "$tu_v1_dropin" ] && grep -q 'TELEPORT_EXT_UPGRADER_VERSION' "$tu_v1_dropin"; then
        if mv -f "$tu_v1_dropin" "$tu_v1_dropin_aside"; then
            tu_log "set aside the shell updater's drop-in ($tu_v1_dropin -> $tu_v1_dropin_aside)"
        else
            tu_log "warning: could not set aside $tu_v1_dropin"
        fi
    fi
}

# Teleport's drop-in set aside by tu_take_over_dropin goes back (unless a
# package put a new one in its place): when Teleport's package replaces
# ours, and when ours is removed. On dpkg it is still a conffile of the
# package name: missing, its next install would stop at a conffile prompt.
tu_restore_dropin() {
    [ -f "$tu_v1_dropin_aside" ] || return 0
    if [ -e "$tu_v1_dropin" ]; then
        rm -f "$tu_v1_dropin_aside" || :
    else
        mv -f "$tu_v1_dropin_aside" "$tu_v1_dropin" || tu_log "warning: could not restore $tu_v1_dropin"
    fi
}

# Are the teleport-upgrade units now on disk ours (WantedBy=timers.target)?
tu_units_ours() {
    for tu_d in usr/lib lib; do
        if grep -q '^WantedBy=timers.target' "$tu_root/$tu_d/systemd/system/$tu_timer" 2>/dev/null; then
            return 0
        fi
    done
    return 1
}

# Teleport's own package (same name) replaced ours: dpkg postrm "upgrade",
# rpm postun with 1, run once its files are in place. Leave nothing of ours
# in effect: its timer enabled its own way (as wanted by the agent's unit,
# when ours was enabled), its drop-in back, our cron file gone (dpkg keeps
# an obsolete conffile; an edited one is renamed to .dpkg-bak, which cron
# ignores). An upgrade to another version of ours does nothing here.
tu_hand_back() {
    if tu_units_ours; then
        return 0
    fi
    tu_timers_link="$tu_root/etc/systemd/system/timers.target.wants/$tu_timer"
    if [ -L "$tu_timers_link" ]; then
        rm -f "$tu_timers_link" || :
        if tu_have_systemctl; then
            tu_unitfiles enable "$tu_timer" >&2 || tu_log "warning: could not enable $tu_timer"
        fi
    fi
    tu_restore_dropin
    if [ -f "$tu_cron" ]; then
        if [ "$(md5sum <"$tu_cron" | cut -d' ' -f1)" = "$tu_cron_md5" ]; then
            rm -f "$tu_cron" || :
        else
            mv -f "$tu_cron" "$tu_cron.dpkg-bak" || :
        fi
    fi
    tu_daemon_reload
    tu_log "handed $tu_timer back to the package that replaced ours"
}

# Upgrade from an earlier version: pick up the new unit files and restart the
# timer only if it is running (an administrator's "disable"/"stop" stays).
tu_upgrade() {
    if [ -e "$tu_removed_mark" ]; then
        tu_install
        return 0
    fi
    tu_take_over_dropin
    rm -rf "$tu_kept_dir" || :
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

# After the package's files are gone: Teleport's drop-in back where it was
# before ours came (if ours had set it aside), then forget the units and
# the drop-in.
tu_after_remove() {
    tu_restore_dropin
    tu_daemon_reload
}

# tu_keep_copy DIR FILE: a copy of FILE (mode, owner and times too) under
# DIR, at its path relative to the root.
tu_keep_copy() {
    tu_rel="${2#"$tu_root"/}"
    mkdir -p "$1/$(dirname "$tu_rel")" && cp -p "$2" "$1/$tu_rel" ||
        tu_log "warning: could not keep a copy of $2"
}

# tu_put_back DIR: every copy under DIR whose file is gone goes back to its
# place; then DIR goes.
tu_put_back() {
    [ -d "$1" ] || return 0
    (cd "$1" && find . -type f) | while IFS= read -r tu_rel; do
        tu_rel="${tu_rel#./}"
        if [ ! -e "$tu_root/$tu_rel" ]; then
            mkdir -p "$tu_root/$(dirname "$tu_rel")" &&
                mv -f "$1/$tu_rel" "$tu_root/$tu_rel" &&
                tu_log "kept /$tu_rel (the operator's configuration)"
        fi
    done
    rm -rf "$1" || :
}

# dpkg postrm "remove", before dpkg --purge deletes the package's conffiles:
# a copy of each one the operator edited (its md5 differs from the
# package's) and of each obsolete one in /etc/teleport-upgrade.d (inherited
# from Teleport's package, e.g. package: the operator's value), for
# tu_purge to put back. After a plain removal the copies wait in the state
# directory, which a re-install clears.
tu_keep_edited_conffiles() {
    command -v dpkg-query >/dev/null 2>&1 || return 0
    rm -rf "$tu_kept_dir" || :
    dpkg-query -W -f='${Conffiles}\n' teleport-ent-updater 2>/dev/null |
        while read -r tu_path tu_md5 tu_flag; do
            [ -n "$tu_path" ] && [ -f "$tu_root$tu_path" ] || continue
            if { [ "$tu_flag" = obsolete ] && [ "${tu_path#/etc/teleport-upgrade.d/}" != "$tu_path" ]; } ||
                [ "$(md5sum <"$tu_root$tu_path" | cut -d' ' -f1)" != "$tu_md5" ]; then
                tu_keep_copy "$tu_kept_dir" "$tu_root$tu_path"
            fi
        done
}

# rpm pre of an upgrade: rpm erases the old package's files that the new
# one does not own (an edited configuration file is saved as .rpmsave, any
# other file just deleted). Teleport's package owns files in
# /etc/teleport-upgrade.d (e.g. package) without marking them as
# configuration, so its erase would delete the operator's values: keep a
# copy of every file there, for tu_rpm_posttrans.
tu_rpm_pre() {
    rm -rf "$tu_migrating_dir" || :
    [ -d "$tu_config_dir" ] || return 0
    for tu_f in "$tu_config_dir"/*; do
        [ -f "$tu_f" ] && [ ! -L "$tu_f" ] && tu_keep_copy "$tu_migrating_dir" "$tu_f"
    done
    return 0
}

# rpm posttrans, after the old package's erase: put back what it deleted.
tu_rpm_posttrans() {
    tu_put_back "$tu_migrating_dir"
}

# dpkg --purge: the updater's state goes; /etc/teleport-upgrade.d stays (its
# files belong to the operator and the agent; dpkg itself removes the
# package's own conffiles).
tu_purge() {
    tu_put_back "$tu_kept_dir"
    rm -rf "$tu_state_dir" || tu_log "warning: could not remove $tu_state_dir"
}
# ---- end packaging/maintscript-lib.sh --------------------------------------
