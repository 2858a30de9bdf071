#!/bin/sh
# Make an installed release the current one, restart the service, and keep only the newest releases.
# Run by `edgekit flash` after install.sh succeeded; by hand:
#
#   sh update.sh PREFIX RELEASE_NAME [KEEP]    e.g. sh update.sh /opt/edgekit 20260509T073525Z-9f2c41be 3
#
# Prints key=value lines (previous=, current=, service=, removed=) for flash to report.
set -eu
prefix=$1
release=$2
keep=${3:-3}
cd "$prefix"
[ -f "releases/$release/.installed" ] || { echo "releases/$release is not a finished install" >&2; exit 20; }

if [ -L current ]; then echo "previous=$(readlink current)"; fi
# A relative link keeps working if PREFIX is moved. The new link is made beside the old one and renamed over
# it: rename(2) is atomic, so the service sees the old release or the new one, never a missing or mixed one.
# (Python does the rename because busybox's mv may lack -T.)
ln -sfn "releases/$release" current.new
"releases/$release/venv/bin/python" -c 'import os; os.replace("current.new", "current")'
echo "current=releases/$release"
# The switch is done: what follows must not fail the flash (a failed flash would remove the release in use).
set +e

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo -n"
if [ -d /run/systemd/system ] && [ -f /etc/systemd/system/edgekit.service ]; then
  # Started only once the broker and source are configured; otherwise it would fail and restart in a loop.
  if $sudo grep -q '^EDGEKIT_SOURCE=.' /etc/edgekit/edgekit.env 2>/dev/null; then
    if $sudo systemctl restart edgekit.service; then echo "service=restarted"; else echo "service=restart_failed"; fi
  else
    echo "service=not_configured"
  fi
fi

# A half-made release (a flash lost its connection before it could clean up) is never switched to: remove it.
for name in $(ls -1 releases); do
  if [ "$name" != "$release" ] && [ ! -f "releases/$name/.installed" ]; then
    rm -rf "releases/$name" && echo "removed=$name"
  fi
done
# Then keep the newest KEEP, the new one included; oldest first, as names start with a UTC timestamp.
total=$(ls -1 releases | wc -l)
i=0
for name in $(ls -1 releases | sort); do
  i=$((i + 1))
  if [ "$name" != "$release" ] && [ $((total - i)) -ge "$keep" ]; then
    rm -rf "releases/$name" && echo "removed=$name"
  fi
done
