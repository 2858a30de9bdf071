#!/bin/sh
# Install edgekit.service for PREFIX/current, run as USER. Needs root or passwordless sudo.
# Run by `edgekit flash` (unless --no-service); by hand:
#
#   sh install-service.sh PREFIX USER          e.g. sh install-service.sh /home/pi/edgekit pi
#
# The environment file with the broker credentials is created from the example only if it does not exist:
# a new release never overwrites a device's configuration.
set -eu
prefix=$1
user=$2
here=$(cd "$(dirname "$0")" && pwd)
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo -n"

unit=$(mktemp)
trap 'rm -f "$unit"' EXIT
sed -e "s|@PREFIX@|$prefix|g" -e "s|@USER@|$user|g" "$here/edgekit.service" > "$unit"
$sudo install -m 0644 "$unit" /etc/systemd/system/edgekit.service
$sudo install -d -m 0755 /etc/edgekit
if ! $sudo test -e /etc/edgekit/edgekit.env; then
  # 0600: it holds the broker password. systemd reads it as root before dropping to USER.
  $sudo install -m 0600 "$here/edgekit.env.example" /etc/edgekit/edgekit.env
  echo "env=created"
fi
$sudo systemctl daemon-reload
$sudo systemctl enable edgekit.service >/dev/null 2>&1
echo "service=installed"
