# The two commands of the README. Each does its own set-up on a fresh machine.
#   make demo   create .venv, install edgekit, run the main job end to end on synthetic data
#               (synthesize -> features -> train -> evaluate -> export for rpi4 -> run it on a drifting machine
#               with telemetry to a local mosquitto)
#   make test   create/update .venv, install what the tests need, run the tests

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO   ?= demo-out
# Debian packages the tests need, installed when root: mosquitto (telemetry tests), openssl (their TLS
# certificates), OpenSSH + rsync + python3-venv (flash tests against a real sshd), systemd (systemd-analyze verify
# of the unit file), qemu-user-static + debootstrap (emulation of the Raspberry Pi 4 in an arm64 userland).
APT_PACKAGES ?= mosquitto openssl openssh-server openssh-client rsync python3-venv systemd qemu-user-static debootstrap
# The demo needs only the broker its device run publishes to.
DEMO_APT_PACKAGES ?= mosquitto
# The real CWRU files are read from where they lie, never copied into the project.
EDGEKIT_CWRU_DIR ?= $(abspath ../shared/data/cwru_12k_drive_end)
export EDGEKIT_CWRU_DIR

.PHONY: demo test venv install-demo install-test system-deps bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

venv: $(BIN)/python

install-demo: venv
	@$(call apt_install,$(DEMO_APT_PACKAGES),the demo)
	$(BIN)/python -m pip install --quiet -e '.[runtime,data,train,export,tflite]'

install-test: venv system-deps
	$(BIN)/python -m pip install --quiet -e '.[dev]'

# $(call apt_install,PACKAGES,WHO): install the missing Debian packages when root, else say which are missing.
apt_install = missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "$(2) needs Debian packages:$$missing (run: sudo apt-get install$$missing)"; fi; \
	fi

system-deps:
	@$(call apt_install,$(APT_PACKAGES),the test suite)

demo: install-demo
	$(BIN)/edgekit data synth --out $(DEMO)/data --seed 0 --overwrite
	$(BIN)/edgekit data info $(DEMO)/data
	$(BIN)/edgekit features extract $(DEMO)/data --bearing 6205 --rpm 1797 --out $(DEMO)/features.npz
	$(BIN)/edgekit data plot $(DEMO)/data --out $(DEMO)/spectra.png
	rm -rf $(DEMO)/run
	$(BIN)/edgekit train $(DEMO)/data --model cnn1d --epochs 15 --seed 0 --out $(DEMO)/run
	$(BIN)/edgekit evaluate $(DEMO)/run --dataset $(DEMO)/data --noise-snr 10
	$(BIN)/edgekit export $(DEMO)/run --target rpi4 --out $(DEMO)/bundle-rpi4
	$(BIN)/edgekit bundle verify $(DEMO)/bundle-rpi4
	$(BIN)/python scripts/demo_device.py $(DEMO)/bundle-rpi4 --out $(DEMO)/device
	@echo "demo done in $(DEMO)/: dataset, features, spectra.png, trained run (metrics, confusion matrix), rpi4 bundle,"
	@echo "  device run on a drifting machine with MQTT telemetry ($(DEMO)/device/reports.jsonl)"

test: install-test
	$(BIN)/python -m pytest -q

bench: install-test
	$(BIN)/python benchmarks/features.py

clean:
	rm -rf $(DEMO) .pytest_cache
