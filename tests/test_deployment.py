"""docker-compose.yml, the Dockerfile and dashboards/ agree with the code.

There is no Docker engine here, so what can be checked is checked: every command the compose file runs exists
(`--help` answers), every environment variable it sets is a configuration field and the values validate, ports
agree between the services, Prometheus and Grafana; promtool accepts the Prometheus config and the alert rules
pass their unit tests; every metric a dashboard or alert uses is one the controller exports.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from agents.config import load_agent_config
from common.config import load_config
from controller.config import ENV_PREFIX, ControllerConfig
from controller.metrics import Metrics
from media.node.config import ENV_PREFIX as MEDIA_PREFIX
from media.node.config import NodeConfig, load_node_config
from tests.test_agent_metrics import sample_metric_names

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS = ROOT / "dashboards" / "prometheus"
GRAFANA = ROOT / "dashboards" / "grafana"


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def substitute(value: str) -> str:
    """Fill ${VAR...} references with a sample value, as compose would from .env."""
    samples = {
        "KETNOI_PUBLIC_URL": "https://ketnoi.example.edu.vn",
        "KETNOI_MEDIA_PUBLIC_URL": "https://media-1.ketnoi.example.edu.vn",
        "KETNOI_TURN_HOST": "turn.ketnoi.example.edu.vn",
    }
    return re.sub(r"\$\{(\w+)[^}]*\}", lambda m: samples.get(m.group(1), "sample-secret"), value)


def test_services_and_their_commands_exist() -> None:
    services = compose()["services"]
    assert {"postgres", "controller", "media", "coturn", "prometheus", "grafana", "agent"} <= set(services)
    for name, service in services.items():
        if service.get("build") != ".":
            continue
        command = service["command"]
        assert command[:2] == ["python", "-m"], name
        result = subprocess.run(
            [sys.executable, "-m", command[2], command[3], "--help"], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, f"{name}: {' '.join(command)} --help failed: {result.stderr}"


def test_dockerfile_copies_every_part_the_services_run() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\w+) ", dockerfile, re.MULTILINE))
    for service in compose()["services"].values():
        if service.get("build") == ".":
            assert service["command"][2] in copied
    assert {"common", "protocol", "rtc"} <= copied  # rtc: the agent's publisher and the media node share it
    for directory in copied:
        assert (ROOT / directory).is_dir(), directory
    assert "simulator" not in copied  # the simulator is for the demo and tests, never deployed


def test_controller_environment_is_valid_configuration() -> None:
    controller = compose()["services"]["controller"]
    environ = {key: substitute(str(value)) for key, value in controller["environment"].items()}
    for key in environ:
        assert key.startswith(ENV_PREFIX + "_")
        assert key[len(ENV_PREFIX) + 1 :].lower() in ControllerConfig.model_fields, key
    config = load_config(ControllerConfig, None, ENV_PREFIX, environ)
    assert config.host == "0.0.0.0"
    assert config.effective_database_url.startswith("postgresql+asyncpg://ketnoi:")
    assert config.cookie_secure is True

    # The port the controller listens on is the one published, health-checked and scraped.
    assert f"{config.port}:{config.port}" in controller["ports"]
    assert f"127.0.0.1:{config.port}/healthz" in " ".join(controller["healthcheck"]["test"])
    scrape = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    targets = [t for job in scrape["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]]
    assert f"controller:{config.port}" in targets


def test_site_agent_configuration_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    agent = compose()["services"]["agent"]
    assert agent["network_mode"] == "host"  # WS-Discovery multicast needs the site's own network
    mount = next(v for v in agent["volumes"] if v.endswith(":/etc/ketnoi/agent.toml:ro"))
    monkeypatch.setenv("KETNOI_CAMERA_PASSWORD", "sample-secret")
    config = load_agent_config(ROOT / mount.split(":")[0])
    assert config.site.camera_networks
    assert config.credentials.resolve_password() == "sample-secret"


def test_mounted_paths_exist() -> None:
    for service in compose()["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: scripts/setup.sh --tests installs Debian's prometheus, which has it"
    return path


def test_promtool_accepts_the_config_and_the_alert_tests_pass(tmp_path: Path) -> None:
    # promtool reads the credentials files: check a copy with a sample token where compose mounts the real one.
    config = tmp_path / "prometheus"
    shutil.copytree(PROMETHEUS, config)
    (config / "secrets" / "controller-token").write_text("kt_sample")
    checked = subprocess.run(
        [promtool(), "check", "config", str(config / "prometheus.yml")], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [promtool(), "test", "rules", "alerts_test.yml"], cwd=PROMETHEUS, capture_output=True, text=True
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def exported_metric_names() -> set[str]:
    names: set[str] = set()
    for family in Metrics().registry.collect():
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}.get(family.type, ("",))
        names |= {family.name + suffix for suffix in suffixes}
    return names


def expressions() -> list[str]:
    exprs = [
        rule["expr"]
        for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    ]
    for path in (GRAFANA / "dashboards").glob("*.json"):
        dashboard = json.loads(path.read_text())
        exprs += [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    return exprs


def test_dashboards_and_alerts_use_metrics_the_controller_exports() -> None:
    exported = exported_metric_names() | sample_metric_names() | {"up"}  # the controller's and the agents'
    used = {name for expr in expressions() for name in re.findall(r"\b(ketnoi_\w+|up)\b(?=\s*[{\[)]|\s*$)", expr)}
    assert used, "no metric found in the dashboards and alerts"
    assert used <= exported, f"not exported: {sorted(used - exported)}"


def test_grafana_provisioning_points_at_the_dashboards_and_prometheus() -> None:
    datasource = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    grafana = compose()["services"]["grafana"]
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "ketnoi.yml").read_text())
    assert any(v.endswith(":" + provider["providers"][0]["options"]["path"] + ":ro") for v in grafana["volumes"])
    for path in (GRAFANA / "dashboards").glob("*.json"):
        dashboard = json.loads(path.read_text())
        assert dashboard["timezone"] == "Asia/Ho_Chi_Minh"
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == uid, panel["title"]


def test_media_node_configuration_agrees_with_the_controller_and_coturn() -> None:
    services = compose()["services"]
    media, controller, coturn = services["media"], services["controller"], services["coturn"]
    assert media["command"] == ["python", "-m", "media", "serve", "--config", "/etc/ketnoi/media.toml"]
    assert media["network_mode"] == "host"  # ICE host candidates are the machine's own addresses
    mount = next(v for v in media["volumes"] if v.endswith(":/etc/ketnoi/media.toml:ro"))
    environ = {key: substitute(str(value)) for key, value in media["environment"].items()}
    for key in environ:
        assert key.startswith(MEDIA_PREFIX + "_")
        assert key[len(MEDIA_PREFIX) + 1 :].lower() in NodeConfig.model_fields, key
    config = load_node_config(ROOT / mount.split(":")[0], environ)
    assert config.loopback_candidates is False
    assert config.public_url == "https://media-1.ketnoi.example.edu.vn"
    assert config.cors_origins == ["https://ketnoi.example.edu.vn"]  # the controller's public URL, the page's origin
    assert f"127.0.0.1:{config.port}/healthz" in " ".join(media["healthcheck"]["test"])

    # The node reports to the controller's published port (the node is on the host network).
    controller_env = {key: substitute(str(value)) for key, value in controller["environment"].items()}
    controller_config = load_config(ControllerConfig, None, ENV_PREFIX, controller_env)
    assert config.controller_url == f"http://127.0.0.1:{controller_config.port}"
    assert f"{controller_config.port}:{controller_config.port}" in controller["ports"]

    # One secret file: written by the controller into a volume the node mounts read-only.
    secret = controller_config.effective_media_secret_file
    assert config.media_secret_file == secret
    volume_of = {v.split(":")[1]: v for v in controller["volumes"]}
    shared = volume_of[str(secret.parent)].split(":")[0]
    assert f"{shared}:{secret.parent}:ro" in media["volumes"]
    assert shared in compose()["volumes"]

    # TURN: coturn checks REST credentials signed with the secret the controller reads.
    command = " ".join(coturn["command"])
    assert "--use-auth-secret" in command and "--realm=" in command
    assert "--static-auth-secret=${KETNOI_TURN_SECRET" in command
    assert compose()["secrets"]["turn_secret"]["environment"] == "KETNOI_TURN_SECRET"
    assert str(controller_config.turn_secret_file) == "/run/secrets/turn_secret"
    assert "turn_secret" in controller["secrets"]
    assert all(url.startswith("turn:turn.ketnoi.example.edu.vn:3478") for url in controller_config.turn_urls)
    assert "--listening-port=3478" in command
    for private in ("10.0.0.0", "127.0.0.0", "172.16.0.0", "192.168.0.0"):
        assert f"--denied-peer-ip={private}-" in command


def test_every_variable_the_compose_file_needs_is_in_the_env_example() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    needed = set(re.findall(r"\$\{(\w+)", text))
    example = {line.split("=")[0] for line in (ROOT / "deploy" / "env.example").read_text().splitlines() if "=" in line}
    assert needed <= example, sorted(needed - example)


def test_prometheus_scrapes_agents_through_the_controller_and_the_media_nodes() -> None:
    services = compose()["services"]
    prometheus, controller = services["prometheus"], services["controller"]
    controller_env = {key: substitute(str(value)) for key, value in controller["environment"].items()}
    port = load_config(ControllerConfig, None, ENV_PREFIX, controller_env).port
    jobs = {
        job["job_name"]: job for job in yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["scrape_configs"]
    }
    assert {"controller", "agents", "agents_lan", "media"} <= set(jobs)

    agents = jobs["agents"]
    assert [sd["url"] for sd in agents["http_sd_configs"]] == [f"http://controller:{port}/api/prometheus/agents"]
    token_files = {agents["authorization"]["credentials_file"]}
    token_files |= {sd["authorization"]["credentials_file"] for sd in agents["http_sd_configs"]}
    assert token_files == {"secrets/controller-token"}
    # Prometheus 2.42's HTTP discovery sends the bare token unless the type is spelled out.
    assert agents["authorization"]["type"] == "Bearer"
    assert all(sd["authorization"]["type"] == "Bearer" for sd in agents["http_sd_configs"])
    # The token file is where compose mounts the secrets directory (a mount point that exists, holding nothing).
    mount = next(v for v in prometheus["volumes"] if v.endswith(":/etc/prometheus/secrets:ro"))
    assert (ROOT / mount.split(":")[0] / ".gitignore").read_text().splitlines()[-2:] == ["*", "!.gitignore"]
    assert (PROMETHEUS / "secrets" / ".gitignore").is_file()
    paths = [r for r in agents["relabel_configs"] if r["target_label"] == "__metrics_path__"]
    assert paths == [
        {"source_labels": ["agent"], "regex": "([0-9]+)", "target_label": "__metrics_path__",
         "replacement": "/api/agents/${1}/metrics"}
    ]  # fmt: skip
    assert agents["scrape_timeout"] == "10s" and ControllerConfig().agent_metrics_timeout_s < 10
    # LAN agents carry job="agents" too: the alerts and dashboards cover both ways of reaching an agent.
    assert {"target_label": "job", "replacement": "agents"} in jobs["agents_lan"]["relabel_configs"]

    # The compose file's media node is scraped on the port it listens on (it runs on the host network).
    media = services["media"]
    node = load_node_config(ROOT / next(v for v in media["volumes"] if v.endswith("media.toml:ro")).split(":")[0])
    listed = [t for f in (PROMETHEUS / "media").glob("*.yml") for group in yaml.safe_load(f.read_text())
              for t in group["targets"]]  # fmt: skip
    assert jobs["media"]["file_sd_configs"] == [{"files": ["media/*.yml"]}]
    assert f"host.docker.internal:{node.port}" in listed
    assert "host.docker.internal:host-gateway" in prometheus["extra_hosts"]
