"""Test helper: a real OpenSSH server on 127.0.0.1 and a free port, with host and client keys made for the test.

The "device" is this machine: flash logs in as the current user (root, as sshd needs) through a real sshd.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from netutil import free_port, wait_for_port


def _binary(name: str, *extra: str) -> str:
    for candidate in (shutil.which(name), *extra):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.skip(f"{name} is not installed (apt-get install openssh-server openssh-client rsync); the flash tests "
                "need a real SSH server")


def make_key(path: Path) -> Path:
    """An ed25519 key pair without passphrase at ``path`` and ``path.pub``."""
    subprocess.run([_binary("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", "edgekit-test", "-f", str(path)],
                   check=True)
    return path


class Sshd:
    """One sshd accepting ``client_key`` for the current user; ``known_hosts`` is the client's file for it."""

    def __init__(self, directory: Path):
        if os.geteuid() != 0:
            pytest.skip("the flash tests start sshd, which must run as root (sshd drops privileges per login)")
        self.binary = _binary("sshd", "/usr/sbin/sshd")
        _binary("ssh")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.user = getpass.getuser()
        self.port = free_port()
        self.host_key = make_key(self.directory / "host_key")
        self.client_key = make_key(self.directory / "client_key")
        self.known_hosts = self.directory / "known_hosts"
        authorized = self.directory / "authorized_keys"
        authorized.write_text((self.directory / "client_key.pub").read_text())
        self.log = self.directory / "sshd.log"
        self.config = self.directory / "sshd_config"
        self.config.write_text("\n".join([
            f"HostKey {self.host_key}", f"AuthorizedKeysFile {authorized}", f"PidFile {self.directory / 'sshd.pid'}",
            "StrictModes no",  # tmp_path's modes are not sshd's business here
            "UsePAM no", "PermitRootLogin prohibit-password", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "ListenAddress 127.0.0.1",
            "Subsystem sftp internal-sftp",  # OpenSSH 9's scp copies over SFTP, as on any stock device
            "",
        ]))
        self.process: subprocess.Popen | None = None

    def start(self) -> "Sshd":
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation folder
        self.process = subprocess.Popen([self.binary, "-D", "-e", "-f", str(self.config), "-p", str(self.port)],
                                        stdout=subprocess.DEVNULL, stderr=open(self.log, "wb"))
        wait_for_port(self.port, self.process, "sshd", self.log.read_text)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def url(self, path: str | Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{path}"

    def flash_options(self) -> dict:
        """Keyword arguments for plan_flash: this server's client key and known-hosts file."""
        return {"identity": str(self.client_key), "known_hosts": str(self.known_hosts)}

    def ssh(self, command: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run ``command`` on the "device" through this server, as flash would."""
        return subprocess.run(
            ["ssh", "-i", str(self.client_key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
             "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=accept-new",
             "-o", "LogLevel=ERROR", "-p", str(self.port), f"{self.user}@127.0.0.1", command],
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
