#!/bin/sh
# What edgekit.service runs: `edgekit run` on the current release, with the source and broker taken from the
# environment (systemd reads them from /etc/edgekit/edgekit.env). Kept in each release so that the command line
# always matches that release's edgekit.
set -eu
# Resolved once: a flash that switches `current` while this starts must not mix two releases.
release=$(cd "$(dirname "$0")/.." && pwd -P)
prefix=$(dirname "$(dirname "$release")")
: "${EDGEKIT_SOURCE:?set EDGEKIT_SOURCE in /etc/edgekit/edgekit.env (see edgekit run --help for the forms)}"

set -- "$release/bundle" --source "$EDGEKIT_SOURCE" --state-dir "${STATE_DIRECTORY:-$prefix/state}" --quiet
if [ -n "${EDGEKIT_MQTT:-}" ]; then set -- "$@" --mqtt "$EDGEKIT_MQTT"; fi
if [ -n "${EDGEKIT_DEVICE_ID:-}" ]; then set -- "$@" --device-id "$EDGEKIT_DEVICE_ID"; fi
if [ -n "${EDGEKIT_FLEET:-}" ]; then set -- "$@" --fleet "$EDGEKIT_FLEET"; fi
# EDGEKIT_MQTT_USERNAME / EDGEKIT_MQTT_PASSWORD are read by edgekit run itself, never put on a command line
# (where `ps` would show them). EDGEKIT_RUN_ARGS: further options, split on spaces.
# shellcheck disable=SC2086
exec "$release/venv/bin/edgekit" run "$@" ${EDGEKIT_RUN_ARGS:-}
