"""What a device is, asked in one SSH round trip before anything is copied: architecture, Python, free space,
tools, permissions and the release it runs now; and the checks that turn a mismatch into a clear error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgekit.deploy.ssh import Remote, SshError
from edgekit.errors import EdgekitError

class DeviceError(EdgekitError):
    """The device cannot take this flash: another architecture, no matching Python, no space, no write access."""


# uname -m spellings of the architectures target profiles name.
_ARCH_ALIASES = {"arm64": "aarch64", "amd64": "x86_64", "armv7": "armv7l", "armhf": "armv7l"}

# POSIX sh: runs under dash, bash and busybox ash. One key=value per line; the parser ignores anything else.
PROBE_SCRIPT = r"""
dest=$1; want=$2
case $dest in /*) ;; *) dest=$HOME/$dest ;; esac
echo "dest=$dest"
echo "arch=$(uname -m)"
echo "user=$(id -un)"
echo "uid=$(id -u)"
if [ -e "$dest" ] && [ ! -d "$dest" ]; then echo "dest_not_folder=yes"; fi
p=$dest
while [ ! -d "$p" ]; do p=$(dirname "$p"); done
echo "existing=$p"
if [ -w "$p" ]; then echo "writable=yes"; fi
echo "free_kib=$(df -Pk "$p" | awk 'NR==2 {print $4}')"
pyinfo='import sys, struct; v = sys.version_info; print("%d.%d %d" % (v[0], v[1], 8 * struct.calcsize("P")))'
for c in "python$want" python3; do
  path=$(command -v "$c" 2>/dev/null) || continue
  info=$("$path" -c "$pyinfo" 2>/dev/null) || continue
  echo "python=$path $info"
  if "$path" -c 'import venv, ensurepip' >/dev/null 2>&1; then echo "venv=$path"; fi
done
if command -v rsync >/dev/null 2>&1; then echo "rsync=yes"; fi
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then echo "systemd=yes"; fi
if [ "$(id -u)" != 0 ] && sudo -n true >/dev/null 2>&1; then echo "sudo=yes"; fi
if [ -L "$dest/current" ]; then echo "current=$(readlink "$dest/current")"; fi
"""


@dataclass(frozen=True)
class DeviceInfo:
    """What the probe found; ``pythons`` maps each interpreter path to (``"3.11"``, pointer bits)."""

    dest: str
    arch: str
    user: str
    uid: int
    free_bytes: int
    writable: bool
    existing: str
    dest_is_file: bool = False
    pythons: dict[str, tuple[str, int]] = field(default_factory=dict)
    venv_capable: tuple[str, ...] = ()
    rsync: bool = False
    systemd: bool = False
    sudo: bool = False
    current: str | None = None

    @property
    def can_admin(self) -> bool:
        return self.uid == 0 or self.sudo

    @property
    def current_release(self) -> str | None:
        return self.current.rsplit("/", 1)[-1] if self.current else None


def normalize_arch(arch: str) -> str:
    return _ARCH_ALIASES.get(arch, arch)


def probe_device(remote: Remote, python: str) -> DeviceInfo:
    """Ask the device about itself (read-only) for a flash into ``remote.target.path`` needing ``python``."""
    result = remote.run_script(PROBE_SCRIPT, [remote.target.path, python], timeout=60)
    values: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values.setdefault(key, []).append(value)
    if result.returncode != 0 or "arch" not in values:
        raise SshError(f"cannot inspect {remote.target.display}: its login shell must run POSIX sh commands "
                       f"({result.stderr.strip() or 'no output'})")

    def one(key: str, default: str = "") -> str:
        return values.get(key, [default])[0]

    pythons = {}
    for entry in values.get("python", []):
        path, version, bits = entry.rsplit(" ", 2)
        pythons.setdefault(path, (version, int(bits)))
    free_kib = one("free_kib", "0")
    return DeviceInfo(
        dest=one("dest"), arch=normalize_arch(one("arch")), user=one("user"), uid=int(one("uid", "-1") or -1),
        free_bytes=int(free_kib) * 1024 if free_kib.isdigit() else 0, writable=one("writable") == "yes",
        existing=one("existing"), dest_is_file=one("dest_not_folder") == "yes", pythons=pythons,
        venv_capable=tuple(values.get("venv", [])), rsync=one("rsync") == "yes", systemd=one("systemd") == "yes",
        sudo=one("sudo") == "yes", current=one("current") or None)


def format_mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def check_device(info: DeviceInfo, host: str, profile: str, arch: str, python: str, need_bytes: int,
                 breakdown: str) -> str:
    """Refuse a device that cannot take the flash; return the Python to build the venv with.

    The order matters: a wrong board is the most basic mistake and is named before anything subtler.
    """
    nothing = "Nothing was copied."
    if info.arch != normalize_arch(arch):
        raise DeviceError(f"wrong architecture: {host} is {info.arch} but the bundle was exported for {profile} "
                          f"({arch}); export the model for a target whose arch is {info.arch} (see: edgekit targets "
                          f"list) or flash it to an {arch} device. {nothing}")
    matching = [path for path, (version, _) in info.pythons.items() if version == python]
    if not matching:
        found = ", ".join(f"{p} is {v}" for p, (v, _) in info.pythons.items()) or "no python3 at all"
        raise DeviceError(f"{host} has no Python {python} ({found}); the wheelhouse for {profile} is built for "
                          f"Python {python}: install python{python} on the device or export for a profile whose "
                          f"platform.python matches it. {nothing}")
    chosen = matching[0]
    bits = info.pythons[chosen][1]
    if arch in ("aarch64", "x86_64") and bits != 64:
        raise DeviceError(f"wrong architecture: {host} runs a 64-bit kernel but a {bits}-bit userland "
                          f"({chosen}); the bundle for {profile} needs a 64-bit OS (e.g. 64-bit Raspberry Pi OS). "
                          f"{nothing}")
    if chosen not in info.venv_capable:
        raise DeviceError(f"{host}: {chosen} cannot create virtual environments (no venv/ensurepip); install "
                          f"them with: sudo apt-get install python{python}-venv. {nothing}")
    if info.dest_is_file:
        raise DeviceError(f"{host}:{info.dest} is a file, not a folder; choose another path in --to. {nothing}")
    if not info.writable:
        raise DeviceError(f"{info.user} cannot write to {host}:{info.existing}; choose a path under the home "
                          f"folder or give {info.user} the folder (sudo mkdir -p {info.dest} && sudo chown "
                          f"{info.user} {info.dest}). {nothing}")
    if info.free_bytes < need_bytes:
        raise DeviceError(f"disk full: {host}:{info.existing} has {format_mib(info.free_bytes)} free but this flash "
                          f"needs about {format_mib(need_bytes)} ({breakdown}); free some space on the device or choose "
                          f"another path in --to. {nothing}")
    return chosen
