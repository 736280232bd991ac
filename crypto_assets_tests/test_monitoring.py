"""The monitoring files in ``deploy/`` checked without deploying anything: Prometheus's configuration and alert rules by
the real ``promtool`` (Debian's ``prometheus`` package, which ``make test-tools`` installs), every metric the alert
rules and the Grafana dashboard query against the capture process's metric families, every alert's runbook anchor
against docs/operations.md, and the compose services and Kubernetes files against the files they name. The proof
that the rules fire on real faults is test_monitoring_end_to_end.py."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from crypto_assets.defs.raw.live_stream import STREAM_JOB
from crypto_assets.settings import PROJECT_ROOT
from crypto_assets_tests.test_deploy import compose, env_example, helm_values
from crypto_assets_tests.test_docs import anchors

DEPLOY = PROJECT_ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
GRAFANA = DEPLOY / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
OPERATIONS = PROJECT_ROOT / "docs" / "operations.md"
SCRAPE_JOB = "crypto-capture"  # the contract's scrape job name: the rules and the dashboard select it
METRICS_PORT = 9464  # CRYPTO_METRICS_PORT's default
# Series Prometheus makes itself for every target, not the capture process.
PROMETHEUS_SERIES = {"up"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is not installed: `make test-tools` installs it (Debian's prometheus package)"
    return path


def load_yaml(path: Path):
    return yaml.safe_load(path.read_text())


def rules() -> list[dict]:
    return [rule for group in load_yaml(PROMETHEUS / "alerts.yml")["groups"] for rule in group["rules"]]


def dashboards() -> list[Path]:
    found = sorted(DASHBOARDS.glob("*.json"))
    assert found, f"no dashboard JSON in {DASHBOARDS}"
    return found


def dashboard_queries(path: Path) -> list[str]:
    """Every PromQL expression of a dashboard: the panels' targets and the query variables."""
    board = json.loads(path.read_text())
    queries = []

    def panels(items):
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(board["panels"]):
        queries.extend(target["expr"] for target in panel.get("targets", []) if target.get("expr"))
    for variable in board.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]
            queries.append(query["query"] if isinstance(query, dict) else query)
    return queries


# --- PromQL: the metric names an expression reads ------------------------------------------------------------------
PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
    "inf", "nan",
}  # fmt: skip
FUNCTION_CALL = re.compile(r"\b([a-zA-Z_][a-zA-Z0-9_]*)\s*\(")
IDENTIFIER = re.compile(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or a Grafana ``label_values(<selector>, label)``) reads: what is left
    once strings, label matchers, grouping clauses, ranges, durations, Grafana's variables and function names are
    taken out."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"label_values\(([^,]*),[^)]*\)", r"\1", text)  # Grafana: label_values(selector, label)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)  # label lists
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = re.sub(r"\boffset\s+-?\w+", " ", text)  # offsets
    text = re.sub(r"\$\w+", " ", text)  # Grafana variables ($__rate_interval, $instance)
    text = FUNCTION_CALL.sub("(", text)
    names = {name for name in IDENTIFIER.findall(text) if name.lower() not in PROMQL_KEYWORDS}
    return names


def test_metric_name_extraction():
    assert metric_names(
        'histogram_quantile(0.95, sum by (job, instance, le) (rate(a_seconds_bucket{job="x", instance=~"$instance"}'
        "[10m]))) > 10"
    ) == {"a_seconds_bucket"}
    assert metric_names('b_total / c or absent(up{job="x"}) and on (instance) (up offset 5m) == 1') == {
        "b_total",
        "c",
        "up",
    }
    assert metric_names('label_values(up{job="crypto-capture"}, instance)') == {"up"}
    assert metric_names("time() - max(d_seconds)") == {"d_seconds"}


def exposed_names() -> set[str]:
    """Every series name the capture process's families expose: a counter as ``<name>`` (the contract's names end
    in ``_total``), a histogram as ``_bucket``, ``_sum`` and ``_count``, a gauge as itself."""
    from crypto_assets.ingest import metrics  # the capture process's metric families (METRIC_NAMES)

    families = getattr(metrics, "FAMILIES", None)  # name -> (type, labels, help), where the module has it
    names = set()
    for name in metrics.METRIC_NAMES:
        kind = families[name][0] if families else None
        if kind in (None, "histogram"):
            names.update(name + suffix for suffix in HISTOGRAM_SUFFIXES)
        if kind != "histogram":
            names.add(name)
        if kind in (None, "counter") and not name.endswith("_total"):
            names.add(name + "_total")
    return names


def test_every_metric_the_rules_and_the_dashboard_query_is_exposed_by_the_capture_process():
    known = exposed_names() | PROMETHEUS_SERIES
    queried: dict[str, set[str]] = {}
    for rule in rules():
        for name in metric_names(rule["expr"]):
            queried.setdefault(name, set()).add(f"alerts.yml {rule['alert']}")
    for path in dashboards():
        for expr in dashboard_queries(path):
            for name in metric_names(expr):
                queried.setdefault(name, set()).add(path.name)
    unknown = {name: sorted(where) for name, where in queried.items() if name not in known}
    assert unknown == {}, "queried but not a metric of crypto_assets/ingest/metrics.py (METRIC_NAMES)"
    assert len(queried) >= 15, sorted(queried)  # the extraction found the queries


def test_every_rule_and_dashboard_query_selects_the_scrape_job():
    for rule in rules():
        for name in metric_names(rule["expr"]):
            assert re.search(rf'\b{name}\{{[^}}]*job="{SCRAPE_JOB}"', rule["expr"]), (rule["alert"], name)
    for path in dashboards():
        for expr in dashboard_queries(path):
            assert f'job="{SCRAPE_JOB}"' in expr, (path.name, expr)


# --- deploy/prometheus ---------------------------------------------------------------------------------------------
def test_promtool_checks_the_compose_configuration_and_its_rules():
    result = subprocess.run(
        [promtool(), "check", "config", "prometheus.yml"], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout + result.stderr


def test_promtool_checks_the_alert_rules():
    result = subprocess.run(
        [promtool(), "check", "rules", "alerts.yml"], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout + result.stderr


# The contract's alerts (the conditions that precede data loss or staleness).
CONTRACT_ALERTS = {
    "CaptureDown",
    "StreamNotRecording",
    "StreamLagHigh",
    "SpoolGrowing",
    "RestWeightNearLimit",
    "RestRateLimited",
    "RestBanned",
    "MinutesGivenUpPiling",
    "ReconnectStorm",
    "LakeWriteFailing",
}


def test_every_alert_has_a_delay_a_severity_its_texts_and_a_runbook_that_resolves():
    found = rules()
    assert {rule["alert"] for rule in found} == CONTRACT_ALERTS
    documented = anchors(OPERATIONS)
    for rule in found:
        name = rule["alert"]
        assert re.fullmatch(r"[0-9]+[smh]", rule.get("for", "")), f"{name}: no `for:`"
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], name
        page, _, anchor = annotations["runbook_url"].partition("#")
        assert (PROJECT_ROOT / page).resolve() == OPERATIONS.resolve(), f"{name}: runbook_url is not docs/operations.md"
        assert anchor == name.lower() and anchor in documented, f"{name}: no heading #{anchor} in docs/operations.md"


def scrape_job(config: dict) -> dict:
    [job] = [job for job in config["scrape_configs"] if job["job_name"] == SCRAPE_JOB]
    return job


def test_compose_prometheus_finds_the_stream_runs_by_the_docker_launchers_label():
    job = scrape_job(load_yaml(PROMETHEUS / "prometheus.yml"))
    assert job["scrape_interval"] == "15s"
    [docker] = job["docker_sd_configs"]
    assert docker["host"] == "unix:///var/run/docker.sock"
    assert docker["port"] == METRICS_PORT
    # dagster_docker's DockerRunLauncher labels every run container dagster/job_name=<job>
    assert docker["filters"] == [{"name": "label", "values": [f"dagster/job_name={STREAM_JOB}"]}]
    network = compose()["networks"]["default"]["name"]
    keep = [r for r in job["relabel_configs"] if r.get("action") == "keep"]
    assert keep == [{"source_labels": ["__meta_docker_network_name"], "regex": network, "action": "keep"}]
    # the run containers' metrics port, where .env.example sets it
    assert env_example().get("CRYPTO_METRICS_PORT", str(METRICS_PORT)) == str(METRICS_PORT)
    service = compose()["services"]["prometheus"]
    assert "/var/run/docker.sock:/var/run/docker.sock:ro" in service["volumes"]
    assert service.get("user") == "0", "the Docker socket is root's"


def test_kubernetes_prometheus_uses_the_same_rules_file_and_finds_the_stream_pods():
    """Debian's promtool is built without Kubernetes discovery: prometheus-k8s.yml is checked here by its shape."""
    compose_config = load_yaml(PROMETHEUS / "prometheus.yml")
    k8s_config = load_yaml(PROMETHEUS / "prometheus-k8s.yml")
    assert k8s_config["rule_files"] == compose_config["rule_files"] == ["alerts.yml"]
    assert k8s_config["global"] == compose_config["global"]
    job = scrape_job(k8s_config)
    assert job["scrape_interval"] == scrape_job(compose_config)["scrape_interval"]
    assert [sd["role"] for sd in job["kubernetes_sd_configs"]] == ["pod"]
    relabels = job["relabel_configs"]
    assert {"source_labels": ["__meta_kubernetes_pod_label_dagster_job"], "regex": STREAM_JOB, "action": "keep"} in (
        relabels
    )
    # the port comes from the run pods' annotation, which the Helm values set to the metrics port
    [address] = [r for r in relabels if r.get("target_label") == "__address__"]
    annotation = address["source_labels"][1].removeprefix("__meta_kubernetes_pod_annotation_")
    run_k8s = helm_values()["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]
    annotations = run_k8s["podTemplateSpecMetadata"]["annotations"]
    [(key, value)] = [(k, v) for k, v in annotations.items() if re.sub(r"[^a-zA-Z0-9_]", "_", k) == annotation]
    assert value == str(METRICS_PORT), key
    [configmap] = [d for d in yaml.safe_load_all((DEPLOY / "helm" / "configmap.yaml").read_text()) if d]
    assert configmap["data"].get("CRYPTO_METRICS_PORT", value) == value, "the annotation names another port"
    # kustomize makes the ConfigMap from these very files (no copy of the rules)
    kustomization = load_yaml(PROMETHEUS / "kustomization.yaml")
    [generator] = kustomization["configMapGenerator"]
    files = dict(item.split("=", 1) if "=" in item else (item, item) for item in generator["files"])
    assert files == {"prometheus.yml": "prometheus-k8s.yml", "alerts.yml": "alerts.yml"}
    assert all((PROMETHEUS / source).is_file() for source in files.values())
    assert kustomization["generatorOptions"]["disableNameSuffixHash"] is True


# --- Grafana and the compose services ------------------------------------------------------------------------------
def test_grafana_is_provisioned_with_the_prometheus_data_source_and_the_dashboards():
    [source] = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    assert "prometheus" in compose()["services"]
    providers = [p for f in (GRAFANA / "provisioning" / "dashboards").glob("*.yml") for p in load_yaml(f)["providers"]]
    assert [p["options"]["path"] for p in providers] == ["/var/lib/grafana/dashboards"]
    for path in dashboards():
        board = json.loads(path.read_text())
        assert board["uid"] and board["title"]
        sources = {json.dumps(t["datasource"]) for p in board["panels"] for t in p["targets"]} | {
            json.dumps(p["datasource"]) for p in board["panels"]
        }
        assert sources == {json.dumps({"type": "prometheus", "uid": source["uid"]})}, path.name
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: panel ids repeat"


def test_dashboard_shows_what_the_issue_asks_for():
    queries = " ".join(q for path in dashboards() for q in dashboard_queries(path))
    for name in (
        "crypto_capture_last_price",
        "crypto_capture_trades_received_total",
        "crypto_capture_minute_latency_seconds_bucket",
        "crypto_capture_minutes_recorded_total",
        "crypto_capture_reconnects_total",
        "crypto_rest_weight_used",
        "crypto_rest_weight_limit",
        "crypto_rest_rate_limited_total",
        "crypto_capture_spool_minutes",
        "crypto_capture_spool_bytes",
        "crypto_lake_write_seconds_bucket",
        "crypto_lake_write_errors_total",
    ):
        assert name in queries, name
    assert "histogram_quantile(0.5," in queries and "histogram_quantile(0.95," in queries


def host_path(volume: str) -> Path | None:
    source = volume.split(":")[0]
    return (DEPLOY / source).resolve() if source.startswith(".") else None


def test_compose_monitoring_services_are_pinned_and_mount_files_that_exist():
    services = compose()["services"]
    mounted = {}
    for name in ("prometheus", "grafana"):
        service = services[name]
        image, _, tag = service["image"].partition(":")
        assert re.fullmatch(r"v?[0-9]+\.[0-9]+\.[0-9]+", tag), f"{name}: image not pinned to a version"
        for volume in service["volumes"]:
            path = host_path(volume)
            if path is not None:
                assert path.exists(), f"{name} mounts {volume}: no such file or folder"
                mounted[volume.split(":")[1]] = path
        for port in service["ports"]:
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond this host"
    command = services["prometheus"]["command"]
    [config] = [arg.split("=", 1)[1] for arg in command if arg.startswith("--config.file=")]
    folder, _, file = config.rpartition("/")
    assert (mounted[folder] / file) == (PROMETHEUS / "prometheus.yml").resolve()
    assert mounted["/etc/grafana/provisioning"] == (GRAFANA / "provisioning").resolve()
    assert mounted["/var/lib/grafana/dashboards"] == DASHBOARDS.resolve()
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (DASHBOARDS / Path(home).name).is_file() and Path(home).parent == Path("/var/lib/grafana/dashboards")


def test_grafanas_admin_password_comes_from_the_environment_and_no_secret_is_in_the_files():
    environment = compose()["services"]["grafana"]["environment"]
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]*\}", environment["GF_SECURITY_ADMIN_PASSWORD"])
    assert env_example()["GRAFANA_ADMIN_PASSWORD"] == ""
    for path in [*PROMETHEUS.iterdir(), *GRAFANA.rglob("*")]:
        if path.is_file():
            assert not re.search(r"(?i)(password|secret|token)\s*[:=]\s*\S", path.read_text()), path


@pytest.mark.parametrize("page", ["README.md", "docs/production.md"])
def test_operations_page_is_linked(page):
    assert "operations.md" in (PROJECT_ROOT / page).read_text()
