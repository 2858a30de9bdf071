#!/bin/sh
# Install one edgekit release on the device: a venv from the release's offline wheelhouse, then the bundle's
# hashes checked by the device's own edgekit. Run by `edgekit flash`; by hand (see README.md):
#
#   sh install.sh RELEASE_DIR [PYTHON]      RELEASE_DIR holds bundle/ and wheelhouse/
#
# Nothing outside RELEASE_DIR is touched, so a failure here leaves the running release alone. Exit status says
# which step failed: 10 venv, 11 package install, 12 bundle verification.
set -eu
release=$1
python=${2:-python3}
cd "$release"

echo "step=venv" >&2
"$python" -m venv venv || exit 10

echo "step=install" >&2
# --no-index plus no pip.conf: only the wheelhouse counts. A device's own index settings (piwheels on Raspberry
# Pi OS, a find-links folder) must neither slow the install down nor change what gets installed.
PIP_CONFIG_FILE=/dev/null venv/bin/python -m pip install --quiet --no-index --find-links wheelhouse \
    --disable-pip-version-check --no-input 'edgekit[runtime]' || exit 11

echo "step=verify" >&2
venv/bin/edgekit bundle verify bundle --format json || exit 12

# The mark update.sh looks for: a release without it is half-made and is never switched to.
touch .installed
