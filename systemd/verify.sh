#!/bin/bash
# Render the djamms systemd units and check them with `systemd-analyze verify`.
#
# usage: systemd/verify.sh OUTDIR [BINDIR]
#   OUTDIR  where the rendered units (and a dummy config) are written; created.
#   BINDIR  directory holding the djamms executable (default /usr/bin). If
#           BINDIR/djamms is not an executable, a stub is created in
#           OUTDIR/bin and used instead (verify insists ExecStart= exists).
#
# The units are rendered for checking only: SYSCONFDIR and DATADIR point into
# OUTDIR, which also gets a dummy djamms.env.
#
# Fails (exit 1) if systemd-analyze exits non-zero OR prints anything that
# mentions one of our units: several real mistakes (e.g. an unknown
# SystemCallFilter= group) are only printed, with exit status 0. Messages
# about other units (missing postgresql.service, distro units on a real host)
# are shown but do not fail.
# When run as root it also applies djamms.tmpfiles.conf to a throwaway root
# directory (never the real /) and checks the resulting owners and modes.
set -u

here=$(cd "$(dirname "$0")" && pwd)
render=$here/../tools/render
units="djamms.socket djamms.service djamms-migrate.service djamms-jobs.service djamms-jobs-hourly.service djamms-mail.service"
timers="djamms-jobs-hourly.timer djamms-mail.timer"

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo "usage: $0 OUTDIR [BINDIR]" >&2
	exit 2
fi
command -v systemd-analyze >/dev/null || { echo "verify: systemd-analyze not found" >&2; exit 2; }

out=$1
bindir=${2:-/usr/bin}
mkdir -p "$out" || exit 2
out=$(cd "$out" && pwd)

if [ -x "$bindir/djamms" ] && [ -f "$bindir/djamms" ]; then
	bindir=$(cd "$bindir" && pwd)
else
	echo "verify: no executable $bindir/djamms, using a stub in $out/bin"
	bindir=$out/bin
	mkdir -p "$bindir"
	printf '#!/bin/sh\nexit 0\n' > "$bindir/djamms"
	chmod 755 "$bindir/djamms"
fi

sysconfdir=$out/etc
datadir=$out/share
mkdir -p "$sysconfdir/djamms" "$datadir/djamms/sql"
cp "$here/djamms.env.example" "$sysconfdir/djamms/djamms.env"

for u in $units; do
	"$render" "$here/$u.in" BINDIR="$bindir" SYSCONFDIR="$sysconfdir" \
		DATADIR="$datadir" > "$out/$u" || { echo "verify: render of $u failed" >&2; exit 1; }
done

fail=0
paths=
for u in $units; do paths="$paths $out/$u"; done
for t in $timers; do cp "$here/$t" "$out/$t"; paths="$paths $out/$t"; done

# --recursive-errors=no: only our units decide the exit status, not whatever
# they pull in from the host.
# shellcheck disable=SC2086
log=$(cd "$out" && systemd-analyze verify --man=no --recursive-errors=no $paths 2>&1)
rc=$?

echo "systemd-analyze verify: exit status $rc"
if [ -n "$log" ]; then
	while IFS= read -r line; do
		case $line in
		*"$out"*|*djamms.socket*|*djamms.service*|*djamms-migrate.service*)
			echo "  ERROR: $line"; fail=1 ;;
		*)
			echo "  note (not our unit): $line" ;;
		esac
	done <<< "$log"
fi
[ "$rc" -eq 0 ] || fail=1

# tmpfiles.d, applied to a scratch root (needs root for chown). Its users come
# from the host's passwd/group: www-data is in Debian's base-passwd.
if [ "$(id -u)" -eq 0 ] && command -v systemd-tmpfiles >/dev/null; then
	scratch=$(mktemp -d "$out/root.XXXXXX")
	mkdir -p "$scratch/etc"
	cp /etc/passwd /etc/group "$scratch/etc/"   # for www-data
	tf_ok=0
	if msg=$(systemd-tmpfiles --root="$scratch" --create "$here/djamms.tmpfiles.conf" 2>&1); then
		tf_ok=1
		for d in "" /audio /images /images/tracks /tmp /tmp/upload /tmp/intent; do
			got=$(stat -c '%a %U:%G' "$scratch/var/lib/djamms$d" 2>/dev/null)
			if [ "$got" != "750 www-data:www-data" ]; then
				msg="${msg:+$msg
}/var/lib/djamms$d: ${got:-missing}, want 750 www-data:www-data"
				tf_ok=0
			fi
		done
	fi
	if [ "$tf_ok" -eq 1 ]; then
		echo "tmpfiles: ok"
	else
		echo "tmpfiles: FAILED"
		printf '%s\n' "$msg" | sed 's/^/  /'
		fail=1
	fi
	rm -rf "$scratch"
else
	echo "tmpfiles: skipped (needs root and systemd-tmpfiles)"
fi

if [ "$fail" -ne 0 ]; then
	echo "verify: FAILED (rendered units in $out)"
	exit 1
fi
echo "verify: ok (rendered units in $out)"
