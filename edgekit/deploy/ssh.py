"""Talk to a device over SSH with the system's ``ssh``, ``scp`` and ``rsync``: parse targets, run scripts, copy files.

The system client is used rather than a Python SSH library so that everything a user has set up for their
devices keeps working: ``~/.ssh/config`` (ProxyJump, per-host users and keys), the agent, known hosts.
Every failure becomes an ``SshError`` whose message says what to check; nothing here prints.

>>> target = parse_target("ssh://pi@192.168.1.20:2222/opt/edgekit")
>>> target.user, target.host, target.port, target.path, target.display
('pi', '192.168.1.20', 2222, '/opt/edgekit', 'pi@192.168.1.20:2222')
>>> parse_target("ssh://pi@raspberrypi.local").path
'edgekit'
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from edgekit.errors import EdgekitError

DEFAULT_PATH = "edgekit"  # relative: under the login's home, which any user can write without sudo
DEFAULT_PORT = 22
CONNECT_TIMEOUT_S = 10

# Remote paths travel through a remote shell, rsync and scp; plain characters keep all three from reinterpreting them.
_SAFE_PATH = re.compile(r"[A-Za-z0-9._/+-]+\Z")
_SAFE_USER = re.compile(r"[A-Za-z0-9._][A-Za-z0-9._-]*\Z")
_UNREACHABLE = ("Connection refused", "Connection timed out", "No route to host", "Network is unreachable",
                "Could not resolve hostname", "Name or service not known", "Temporary failure in name resolution",
                "Connection reset by peer", "Connection closed by")
# ssh's "Permission denied (publickey,password)", not a remote "Permission denied (13)" from rsync or mkdir.
_AUTH_REFUSED = re.compile(r"Permission denied \([a-z-]+(,[a-z-]+)*\)|Too many authentication failures")


class SshError(EdgekitError):
    """The device could not be reached, refused the login, or a command on it failed."""


@dataclass(frozen=True)
class SshTarget:
    """Where to flash: ``user@host:port`` and the folder on the device (relative paths are under the home).

    ``identity`` is a private key file (``ssh -i``); ``known_hosts`` replaces ``~/.ssh/known_hosts``; ``options``
    are further ``ssh -o`` settings (``Key=value``) for callers that need them, such as tests.
    """

    host: str
    user: str | None = None
    port: int = DEFAULT_PORT
    path: str = DEFAULT_PATH
    identity: str | None = None
    known_hosts: str | None = None
    options: tuple[str, ...] = ()
    connect_timeout: int = CONNECT_TIMEOUT_S

    @property
    def destination(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}" if self.user else host

    @property
    def display(self) -> str:
        """``user@host:port`` for messages."""
        return f"{self.destination}:{self.port}"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def ssh_options(self) -> list[str]:
        """The options shared by ssh, scp and rsync's ssh, without the port (each tool spells it differently)."""
        opts = ["-o", "BatchMode=yes",  # never prompt: a flash runs unattended and a prompt would hang it
                "-o", f"ConnectTimeout={self.connect_timeout}",
                "-o", "StrictHostKeyChecking=accept-new",  # trust a new device once; a changed key stays an error
                "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4",  # a dead link fails, never hangs
                "-o", "LogLevel=ERROR"]
        if self.identity:
            opts += ["-i", self.identity, "-o", "IdentitiesOnly=yes"]
        if self.known_hosts:
            opts += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        for option in self.options:
            opts += ["-o", option]
        return opts


def parse_target(url: str, identity: str | None = None, known_hosts: str | None = None,
                 options: Sequence[str] = ()) -> SshTarget:
    """Parse ``ssh://[USER@]HOST[:PORT][/PATH]``; ``/~/x`` or no path means a folder under the login's home."""
    from urllib.parse import unquote, urlsplit

    usage = "use ssh://USER@HOST[:PORT][/PATH], e.g. ssh://pi@raspberrypi.local/opt/edgekit"
    parts = urlsplit(url)
    if parts.scheme != "ssh" or not parts.netloc:
        raise SshError(f"{url!r} is not an SSH target; {usage}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise SshError(f"{url!r} has an invalid port; {usage}") from None
    if not host:
        raise SshError(f"{url!r} names no host; {usage}")
    user = unquote(parts.username) if parts.username else None
    if parts.password is not None:
        raise SshError(f"{url!r} holds a password; flash logs in with a key only: drop ':PASSWORD' and pass "
                       "--identity KEY")
    if user is not None and not _SAFE_USER.match(user):
        raise SshError(f"{user!r} is not a valid user name in {url!r}")
    path = unquote(parts.path)
    if path in ("", "/", "/~", "/~/"):
        path = DEFAULT_PATH
    elif path.startswith("/~/"):
        path = path[3:].rstrip("/")
    else:
        path = path.rstrip("/")
    if not _SAFE_PATH.match(path) or ".." in path.split("/"):
        raise SshError(f"{path!r} is not a usable device folder; use letters, digits and . _ - + / without '..'")
    if identity is not None and not Path(identity).is_file():
        raise SshError(f"identity file {identity} does not exist; pass the private key whose public half is in "
                       "the device's ~/.ssh/authorized_keys")
    return SshTarget(host=host, user=user, port=port or DEFAULT_PORT, path=path, identity=identity,
                     known_hosts=known_hosts, options=tuple(options))


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SshError(f"the {name} command is not installed on this machine; install OpenSSH's client "
                       "(Debian/Ubuntu: sudo apt-get install openssh-client)")
    return path


def connection_error(target: SshTarget, stderr: str) -> SshError | None:
    """The clear error for an SSH-level failure described by ``stderr``, or None if it is not one."""
    if _AUTH_REFUSED.search(stderr):
        key = f"--identity {target.identity}" if target.identity else "--identity (no key was given)"
        return SshError(f"SSH authentication to {target.destination} refused; check {key}: its public key must be "
                        f"in ~/.ssh/authorized_keys of {target.user or 'the user'} on the device")
    if "IDENTIFICATION HAS CHANGED" in stderr or "Host key verification failed" in stderr:
        return SshError(f"the host key of {target.address} does not match the one in known hosts; if the device "
                        f"was reinstalled, remove the old key with: ssh-keygen -R '[{target.host}]:{target.port}'")
    for reason in _UNREACHABLE:
        if reason in stderr:
            reason = "Connection closed" if reason == "Connection closed by" else reason
            return SshError(f"cannot reach {target.address} ({reason}); check the address, that the device is on "
                            "and that its SSH server runs")
    return None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


class Remote:
    """Runs scripts on and copies files to one ``SshTarget``."""

    def __init__(self, target: SshTarget):
        self.target = target
        self._ssh = _tool("ssh")

    def _ssh_command(self, remote_command: str) -> list[str]:
        return [self._ssh, *self.target.ssh_options(), "-p", str(self.target.port), self.target.destination,
                remote_command]

    def run_script(self, script: str, args: Sequence[str] = (), timeout: float | None = None) \
            -> subprocess.CompletedProcess:
        """Run a POSIX sh ``script`` (sent on stdin) with ``args``; SSH failures raise, the script's own exit
        status is the caller's to judge."""
        return self._execute(self._ssh_command(shlex.join(["sh", "-s", "--", *args])), script, timeout)

    def _execute(self, command: list[str], stdin: str | None, timeout: float | None) -> subprocess.CompletedProcess:
        try:
            # stdin is the script or nothing: a remote command must never wait for, or eat, our terminal's input.
            result = subprocess.run(command, input=stdin if stdin is not None else "", capture_output=True,
                                    text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SshError(f"{self.target.display} did not answer within {timeout:.0f} s; check the device and "
                           "the network") from None
        if result.returncode == 255:  # ssh's own failure; a remote command's status is passed through otherwise
            raise connection_error(self.target, result.stderr) or SshError(
                f"ssh to {self.target.display} failed: {_last_line(result.stderr)}")
        return result

    def run(self, args: Sequence[str], timeout: float | None = None) -> subprocess.CompletedProcess:
        """Run one command (``args``, quoted for the remote shell) with no stdin; like ``run_script``."""
        return self._execute(self._ssh_command(shlex.join(args)), None, timeout)

    def copy(self, sources: Sequence[Path], remote_dir: str, use_rsync: bool) -> str:
        """Copy files and folders into the existing absolute ``remote_dir``; returns the tool used."""
        if use_rsync and shutil.which("rsync"):
            ssh = shlex.join([self._ssh, *self.target.ssh_options(), "-p", str(self.target.port)])
            # -L: the sources may be links to what is to be copied (flash stages wheels as links, not copies).
            command = ["rsync", "-aL", "-e", ssh, *map(str, sources), f"{self.target.destination}:{remote_dir}/"]
            tool = "rsync"
        else:
            command = [_tool("scp"), "-r", "-q", *self.target.ssh_options(), "-P", str(self.target.port),
                       *map(str, sources), f"{self.target.destination}:{remote_dir}/"]
            tool = "scp"
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            if "No space left on device" in result.stderr:
                raise SshError(f"disk full: {self.target.host}:{remote_dir} ran out of space while copying; "
                               "free some space on the device or choose another path in --to")
            raise connection_error(self.target, result.stderr) or SshError(
                f"copying to {self.target.host}:{remote_dir} with {tool} failed: {_last_line(result.stderr)}")
        return tool
