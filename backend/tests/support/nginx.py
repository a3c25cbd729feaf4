"""A private nginx around the project's site snippet (``nginx/snippets/tradefleet-site.conf``, the file
production includes), for the browser tests and the Compose test: the real Nginx in front of the API."""

from __future__ import annotations

import subprocess
from pathlib import Path

from support.common import nginx_binary, unavailable
from tradefleet.config import REPO_ROOT

NGINX_SNIPPETS = REPO_ROOT / "nginx" / "snippets"

NGINX_TEST_CONF = """\
# Written by tests/support/nginx.py: a private nginx around the project's site snippet.
daemon off;
master_process on;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {logs}/nginx-error.log info;

events {{ worker_connections 256; }}

http {{
    include {mime_types};
    default_type application/octet-stream;
    access_log {logs}/nginx-access.log;
    sendfile on;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;

    upstream tradefleet_api {{
        server {api_host}:{api_port};
        keepalive 16;
    }}

    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root {root};
        include snippets/tradefleet-site.conf;
    }}
}}
"""


def render_nginx_conf(conf_dir: Path, *, port: int, api_port: int, root: Path, logs: Path,
                      api_host: str = "127.0.0.1") -> Path:
    """Write ``<conf_dir>/nginx.conf`` (with ``snippets/`` linked to the project's ``nginx/snippets``, so
    relative includes resolve exactly as under ``/etc/nginx``); returns its path."""
    nginx = nginx_binary()
    conf_dir.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    snippets = conf_dir / "snippets"
    if not snippets.exists():
        snippets.symlink_to(NGINX_SNIPPETS, target_is_directory=True)
    mime = next((p for p in (Path(nginx).resolve().parent.parent / "etc/nginx/mime.types",
                             Path("/etc/nginx/mime.types"), Path("/usr/local/nginx/conf/mime.types"))
                 if p.is_file()), None)
    if mime is None:
        unavailable("nginx's mime.types not found")
    path = conf_dir / "nginx.conf"
    path.write_text(NGINX_TEST_CONF.format(tmp=conf_dir, logs=logs, mime_types=mime, api_host=api_host,
                                           api_port=api_port, port=port, root=root))
    return path


def nginx_command(conf: Path) -> list[str]:
    """``nginx -t`` the config written by :func:`render_nginx_conf` (``RuntimeError`` with nginx's message),
    then the command that runs it in the foreground."""
    nginx = nginx_binary()
    check = subprocess.run([nginx, "-t", "-p", str(conf.parent), "-c", str(conf)], capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"nginx -t failed:\n{check.stderr}")
    return [nginx, "-p", str(conf.parent), "-c", str(conf)]
