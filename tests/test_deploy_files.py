"""The deployment files in deploy/ parse and agree with each other.

No container engine runs the compose file here; these checks are what can be
checked without one: the YAML's structure, the unit file's directives (and
`systemd-analyze verify` when present), and the nginx configuration (`nginx -t`
on a copy whose upstream names are 127.0.0.1 when nginx is installed; its
structure read as text either way).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def gateway_services(services: dict) -> dict[str, dict]:
    return {
        name: s
        for name, s in services.items()
        if "llm-wrapper" in str(s.get("build", s.get("image", ""))) or name.startswith("gateway")
    }


def unit_directives(text: str) -> dict[str, list[tuple[str, str]]]:
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"directive outside a section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"not a KEY=VALUE line: {line}"
        current.append((key.strip(), value.strip()))
    return sections


def test_compose_has_two_gateways_sharing_postgres_behind_nginx() -> None:
    services = compose()["services"]
    gateways = gateway_services(services)
    assert sorted(gateways) == ["gateway-1", "gateway-2"]
    urls = {s["environment"]["DATABASE_URL"] for s in gateways.values()}
    assert len(urls) == 1
    url = urls.pop()
    assert url.startswith("postgresql://") and "@postgres:5432/" in url
    assert services["postgres"]["image"].startswith("postgres:")
    assert "POSTGRES_PASSWORD" in services["postgres"]["environment"]
    for gateway in gateways.values():
        assert gateway["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY / gateway["build"]["context"] / gateway["build"]["dockerfile"]).is_file()
        assert gateway["command"][0] == "serve"
        assert gateway["depends_on"]["postgres"]["condition"] == "service_healthy"
    nginx = services["nginx"]
    assert nginx["image"].startswith("nginx")
    assert set(nginx["depends_on"]) == set(gateways)
    mounted = [v.split(":")[0] for v in nginx["volumes"]]
    assert "./nginx.conf" in mounted


def test_nginx_upstream_names_the_compose_gateways() -> None:
    servers = re.findall(
        r"^\s*server\s+([\w.-]+):(\d+)", (DEPLOY / "nginx.conf").read_text(), re.MULTILINE
    )
    assert sorted(host for host, _ in servers) == sorted(gateway_services(compose()["services"]))
    assert {port for _, port in servers} == {"8080"}


def test_unit_file_runs_serve_as_a_dedicated_user(tmp_path: Path) -> None:
    text = (DEPLOY / "llm-wrapper.service").read_text()
    sections = unit_directives(text)
    assert set(sections) == {"Unit", "Service", "Install"}
    service = dict(sections["Service"])
    exec_start = service["ExecStart"].split()
    assert exec_start[0] == "/opt/llm-wrapper/venv/bin/llm-wrapper"
    assert exec_start[1] == "serve"
    assert service["User"] not in ("", "root")
    assert service["Restart"] == "on-failure"
    assert service["EnvironmentFile"].startswith("/etc/llm-wrapper/")
    for hardening in ("NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp"):
        assert service[hardening] in ("yes", "strict"), hardening
    assert dict(sections["Install"])["WantedBy"] == "multi-user.target"
    analyze = shutil.which("systemd-analyze")
    if analyze:  # verify a copy whose ExecStart exists here (the real one is on the target machine)
        copy = tmp_path / "llm-wrapper.service"
        copy.write_text(
            text.replace(
                "/opt/llm-wrapper/venv/bin/llm-wrapper", shutil.which("true") or "/bin/true"
            )
        )
        result = subprocess.run(
            [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
        assert "llm-wrapper.service" not in result.stderr, result.stderr


def test_nginx_config_streams_and_passes_nginx_t(tmp_path: Path) -> None:
    text = (DEPLOY / "nginx.conf").read_text()
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    assert code.count("{") == code.count("}")
    assert re.search(r"upstream\s+llm_wrapper\s*\{", code)
    assert len(re.findall(r"^\s*server\s+\S+:\d+", code, re.MULTILINE)) == 2
    for directive in (
        "proxy_buffering off;",
        "proxy_http_version 1.1;",
        "proxy_pass http://llm_wrapper;",
    ):
        assert directive in code, directive
    read_timeout = re.search(r"proxy_read_timeout\s+(\d+)s;", code)
    assert read_timeout and int(read_timeout.group(1)) >= 600
    assert re.search(r"client_max_body_size\s+\d+[mM];", code)
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if nginx:
        site = tmp_path / "site.conf"
        site.write_text(re.sub(r"gateway-\d+:", "127.0.0.1:", text))
        temp = " ".join(
            f"{kind}_temp_path {tmp_path / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        wrapper = tmp_path / "nginx.conf"
        wrapper.write_text(
            f"pid {tmp_path / 'nginx.pid'};\nerror_log {tmp_path / 'error.log'};\n"
            f"events {{}}\nhttp {{ access_log off; {temp} include {site}; }}\n"
        )
        result = subprocess.run(
            [
                nginx,
                "-t",
                "-p",
                str(tmp_path),
                "-e",
                str(tmp_path / "error.log"),
                "-c",
                str(wrapper),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "test is successful" in result.stderr


def test_dockerfile_runs_serve_unprivileged_with_a_healthcheck() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    instructions = [
        line.split(None, 1)
        for line in text.splitlines()
        if line and not line.startswith(("#", " "))
    ]
    keywords = [i[0] for i in instructions]
    assert instructions[keywords.index("FROM")][1].strip() == "python:3.11-slim"
    user = instructions[keywords.index("USER")][1].strip()
    assert user not in ("root", "0")
    assert "EXPOSE" in keywords and "8080" in instructions[keywords.index("EXPOSE")][1]
    assert re.search(r"^HEALTHCHECK .*\\\n.*/healthz", text, re.MULTILINE)
    assert re.search(r"pip install /src", text)
    assert '"serve"' in instructions[keywords.index("CMD")][1]
    assert keywords.index("USER") > keywords.index("RUN")  # installs as root, runs as the user
