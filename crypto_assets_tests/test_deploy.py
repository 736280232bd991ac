"""The deployment files in ``deploy/`` are checked without deploying anything: the instance file against Dagster's own
instance schema (and each configurable class against its own), the workspace against Dagster's workspace schema, the
compose file with a compose tool where the machine has one, the Helm values against the key names of the official
chart's values schema, and every name that ties the files together (variables, volumes, networks, tags, pools,
modules, pinned versions) against the code and the other files."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster._core.storage.config import pg_config
from dagster._core.workspace.config_schema import ensure_workspace_config

from crypto_assets.defs.analytics.assets import DUCKDB_POOL
from crypto_assets.defs.raw import live_stream
from crypto_assets.defs.raw.gap_backfill import GAP_TAG
from crypto_assets.settings import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
HELM = DEPLOY / "helm"
STATE_MOUNT = "/opt/dagster/state"
CODE_SERVER_PORT = 4000
# The tag the stream job carries for the run queue's limit of one streaming run, and the run-retry opt-out.
SHARD_TAG = live_stream.SHARD_TAG
MAX_RETRIES_TAG = "dagster/max_retries"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY")


def load_yaml(path: Path):
    return yaml.safe_load(path.read_text())


def instance() -> dict:
    return load_yaml(DEPLOY / "dagster.yaml")


def helm_values() -> dict:
    return load_yaml(HELM / "values.yaml")


def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for number, line in enumerate((DEPLOY / ".env.example").read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", name), f".env.example line {number} is not NAME=value: {line!r}"
        assert name not in values, f".env.example sets {name} twice"
        values[name] = value
    return values


def readme_variables() -> list[str]:
    """The variables of the README's configuration table (the project's configuration contract)."""
    text = (PROJECT_ROOT / "README.md").read_text()
    section = text.split("\n## Configuration", 1)[1].split("\n## ", 1)[0]
    names = re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", section, flags=re.M)
    assert len(names) >= 10, "the README's configuration table was not found"
    return names


def project_variables() -> set[str]:
    """What every process that runs the project's code needs: the configuration table less DAGSTER_HOME (each
    container sets its own)."""
    return set(readme_variables()) - {"DAGSTER_HOME"}


def lib_version(dagster_version: str) -> str:
    """Dagster's libraries release beside the core: dagster 1.N.M <-> libraries 0.(N+16).M."""
    major, minor, patch = dagster_version.split(".")
    assert major == "1"
    return f"0.{int(minor) + 16}.{patch}"


def setup_dagster_pin() -> str:
    match = re.search(r'"dagster==([0-9.]+)"', (PROJECT_ROOT / "setup.py").read_text())
    assert match, "setup.py pins no dagster version"
    return match.group(1)


def module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


@pytest.fixture
def deploy_env(monkeypatch) -> dict[str, str]:
    """The environment of .env.example, blanks (the secrets) filled with throwaway values: `{env: ...}` resolves."""
    env = {name: value or f"throwaway-{name.lower()}" for name, value in env_example().items()}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def grpc_module(args: list[str]) -> str:
    assert "-m" in args, f"no -m <module> in {args}"
    return args[args.index("-m") + 1]


# --- deploy/dagster.yaml -------------------------------------------------------------------------------------------


def test_instance_file_validates_against_dagsters_instance_schema():
    config, custom_class = dagster_instance_config(str(DEPLOY))  # raises DagsterInvalidConfigError when it does not
    assert custom_class is None
    assert set(config) >= {
        "run_storage",
        "event_log_storage",
        "schedule_storage",
        "run_launcher",
        "concurrency",
        "run_monitoring",
        "run_retries",
        "telemetry",
    }
    assert config["telemetry"] == {"enabled": False}


def test_postgres_storage_comes_from_the_environment_over_psycopg2(monkeypatch):
    pg_utils = importlib.import_module("dagster_postgres.utils")

    config = instance()
    db = config["run_storage"]["config"]["postgres_db"]
    # one database for the three storages, the event log's class holding its connections (crypto_assets.defs.instance)
    for storage in ("event_log_storage", "schedule_storage"):
        assert config[storage]["config"]["postgres_db"] == db
    classes = {name: (config[name]["module"], config[name]["class"]) for name in ("run_storage", "schedule_storage")}
    assert classes == {
        "run_storage": ("dagster_postgres.run_storage", "PostgresRunStorage"),
        "schedule_storage": ("dagster_postgres.schedule_storage", "PostgresScheduleStorage"),
    }
    event_log = config["event_log_storage"]
    storage_class = getattr(importlib.import_module(event_log["module"]), event_log["class"])
    assert issubclass(storage_class, importlib.import_module("dagster_postgres").PostgresEventLogStorage)
    expected = {
        "hostname": "DAGSTER_PG_HOST",
        "port": "DAGSTER_PG_PORT",
        "username": "DAGSTER_PG_USER",
        "password": "DAGSTER_PG_PASSWORD",
        "db_name": "DAGSTER_PG_DB",
    }
    assert {field: db[field] for field in expected} == {field: {"env": var} for field, var in expected.items()}
    assert db["scheme"] == "postgresql+psycopg2"
    for field, var in expected.items():
        monkeypatch.setenv(var, "5433" if field == "port" else f"throwaway-{field}")
    processed = process_config(pg_config(), {"postgres_db": db})
    assert processed.success, processed.errors
    url = pg_utils.pg_url_from_config(processed.value)
    assert url.startswith("postgresql+psycopg2://throwaway-username:throwaway-password@throwaway-hostname:5433/")


def test_configurable_classes_take_their_config(deploy_env):
    compute_logs = instance()["compute_logs"]
    module = importlib.import_module(compute_logs["module"])
    result = process_config(getattr(module, compute_logs["class"]).config_type(), compute_logs["config"])
    assert result.success, result.errors

    launcher = instance()["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_docker", "DockerRunLauncher")
    dagster_docker = importlib.import_module("dagster_docker")  # the dev extra installs it
    result = process_config(dagster_docker.DockerRunLauncher.config_type(), launcher["config"])
    assert result.success, result.errors
    dagster_docker.DockerRunLauncher(**launcher["config"])  # its own checks (network vs networks, container_kwargs)


def test_run_containers_get_every_variable_the_code_reads():
    forwarded = set(instance()["run_launcher"]["config"]["env_vars"])
    needed = project_variables() | {
        "DAGSTER_PG_HOST",
        "DAGSTER_PG_PORT",
        "DAGSTER_PG_USER",
        "DAGSTER_PG_PASSWORD",
        "DAGSTER_PG_DB",
        "DAGSTER_COMPUTE_LOGS_BUCKET",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
    }
    assert needed - forwarded == set()
    assert forwarded - set(env_example()) == set(), "a forwarded variable is not in .env.example"


def test_run_queue_limits_name_the_codes_tags_and_pool():
    concurrency = instance()["concurrency"]
    limits = {limit["key"]: limit for limit in concurrency["runs"]["tag_concurrency_limits"]}
    assert limits[SHARD_TAG]["limit"] == 1 and limits[SHARD_TAG]["value"] == {"applyLimitPerUniqueValue": True}
    assert "value" not in limits[GAP_TAG], "the gap tag's value is the symbol: the limit must span all of them"
    assert limits[GAP_TAG]["limit"] == int(env_example()["CRYPTO_GAP_MAX_RUNS"])
    assert concurrency["pools"]["default_limit"] == 1
    # default_limit 1 is meant for the DuckDB pool: any other pool in the code would be limited to 1 as well.
    pools = set()
    for path in (PROJECT_ROOT / "crypto_assets").rglob("*.py"):
        pools.update(re.findall(r"\bpool=([A-Za-z_\"']+)", path.read_text()))
    assert pools == {"DUCKDB_POOL"} and DUCKDB_POOL == "duckdb"


def test_monitoring_and_retries_leave_the_stream_to_its_keepalive_sensor():
    config = instance()
    monitoring = config["run_monitoring"]
    assert monitoring["enabled"] is True
    assert monitoring["max_runtime_seconds"] == 0, "a global runtime limit would kill the streaming run"
    assert monitoring["max_resume_run_attempts"] == 0, "resuming a dead stream run races the keep-alive sensor"
    assert 0 < monitoring["start_timeout_seconds"] and 0 < monitoring["poll_interval_seconds"] <= 120
    assert config["run_retries"]["enabled"] is True and config["run_retries"]["max_retries"] >= 1


def test_stream_job_carries_its_queue_tag_and_opts_out_of_run_retries():
    job = live_stream.live_trades_stream
    tags = {**job.tags, **(getattr(job, "run_tags", None) or {})}
    assert tags[SHARD_TAG] == "0/1"
    assert tags.get(MAX_RETRIES_TAG) == "0"


# --- deploy/workspace.yaml -----------------------------------------------------------------------------------------


def test_workspace_loads_the_code_from_the_grpc_server(deploy_env):
    path = DEPLOY / "workspace.yaml"
    [entry] = load_yaml(path)["load_from"]
    server = entry["grpc_server"]
    assert server["host"] == {"env": "DAGSTER_CODE_SERVER_HOST"}
    assert server["port"] == {"env": "DAGSTER_CODE_SERVER_PORT"}
    config = ensure_workspace_config(load_yaml(path), str(path))  # Dagster's workspace schema, env resolved
    assert config["load_from"] == [
        {"grpc_server": {"host": "code", "port": CODE_SERVER_PORT, "location_name": "crypto_assets"}}
    ]
    assert deploy_env["DAGSTER_CODE_SERVER_HOST"] in compose()["services"]


# --- deploy/docker-compose.yml and deploy/.env.example -------------------------------------------------------------


def compose() -> dict:
    return load_yaml(DEPLOY / "docker-compose.yml")


def compose_variables() -> set[str]:
    text = (DEPLOY / "docker-compose.yml").read_text()
    return set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", text))


def test_env_example_lists_every_variable_and_no_secret():
    values = env_example()
    missing = (set(readme_variables()) | compose_variables()) - set(values)
    assert missing == set(), f"not in deploy/.env.example: {sorted(missing)}"
    secrets = {name: value for name, value in values.items() if SECRET_NAME.search(name) and value}
    assert secrets == {}, "deploy/.env.example must leave secrets blank"


def test_compose_services_commands_and_shared_names():
    config = compose()
    services = config["services"]
    assert set(services) == {"postgres", "minio", "buckets", "code", "webserver", "daemon", "prometheus", "grafana"}
    code = services["code"]
    assert code["command"][:3] == ["dagster", "api", "grpc"]
    assert grpc_module(code["command"]) == "crypto_assets.definitions" and module_exists("crypto_assets.definitions")
    assert code["command"][code["command"].index("-p") + 1] == str(CODE_SERVER_PORT)
    assert code["build"]["dockerfile"] == "deploy/Dockerfile" and (DEPLOY / code["build"]["context"]).resolve() == (
        PROJECT_ROOT.resolve()
    )
    assert services["webserver"]["command"][0] == "dagster-webserver"
    assert services["daemon"]["command"][:2] == ["dagster-daemon", "run"]
    for name in ("webserver", "daemon"):
        command = services[name]["command"]
        assert command[command.index("-w") + 1] == "/opt/dagster/dagster_home/workspace.yaml"
        assert "/var/run/docker.sock:/var/run/docker.sock" in services[name]["volumes"]
    bin_dir = Path(sys.executable).parent
    for executable in ("dagster", "dagster-webserver", "dagster-daemon"):
        assert (bin_dir / executable).exists() or shutil.which(executable), f"{executable} is not installed"
    for name in ("code", "webserver", "daemon"):
        assert "./dagster.yaml:/opt/dagster/dagster_home/dagster.yaml:ro" in services[name]["volumes"]
    # The run launcher attaches run containers to the compose network and the state volume by their names.
    launcher = instance()["run_launcher"]["config"]
    assert config["networks"]["default"]["name"] == launcher["network"]
    [volume] = launcher["container_kwargs"]["volumes"]
    volume_name, mount = volume.split(":")
    assert config["volumes"][volume_name]["name"] == volume_name and mount == STATE_MOUNT
    assert f"{volume_name}:{STATE_MOUNT}" in code["volumes"]
    assert code["environment"]["DAGSTER_CURRENT_IMAGE"] == code["image"]
    for name in ("CRYPTO_SPOOL_DIR", "CRYPTO_WEIGHT_BUDGET_DIR", "DBT_DUCKDB_PATH"):
        assert env_example()[name].startswith(STATE_MOUNT + "/"), f"{name} must be on the shared state volume"


def compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_compose_file_validates_with_a_compose_tool(tmp_path):
    command = compose_command()
    assert command is not None, (
        "no compose tool here: neither `docker compose` nor `docker-compose` (make test installs docker-compose)"
    )
    env = {name: value or f"throwaway-{name.lower()}" for name, value in env_example().items()}
    env.update(PATH=os.environ.get("PATH", ""), HOME=str(tmp_path))
    result = subprocess.run(
        [*command, "-f", str(DEPLOY / "docker-compose.yml"), "config", "-q"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


# --- deploy/Dockerfile ---------------------------------------------------------------------------------------------


def dockerfile() -> str:
    return (DEPLOY / "Dockerfile").read_text()


def test_dockerfile_commands_name_modules_that_exist_and_pins_match_setup():
    text = dockerfile()
    assert re.search(r"^FROM python:3\.11-slim$", text, flags=re.M)
    [cmd] = re.findall(r"^CMD (\[.*\])$", text, flags=re.M)
    cmd = json.loads(cmd)
    assert cmd[:3] == ["dagster", "api", "grpc"] and cmd[cmd.index("-p") + 1] == str(CODE_SERVER_PORT)
    assert module_exists(grpc_module(cmd))
    assert cmd == compose()["services"]["code"]["command"]
    # The manifest step's imports exist.
    [(module, names)] = re.findall(r'python -c "from ([\w.]+) import ([\w, ]+);', text)
    imported = importlib.import_module(module)
    assert all(hasattr(imported, name.strip()) for name in names.split(","))
    for source in re.findall(r"^COPY (.+) \S+$", text, flags=re.M):
        for name in source.split():
            assert (PROJECT_ROOT / name).exists(), f"COPY {name}: no such file in the repository"
    # Dagster's libraries pinned in the image release with the dagster that setup.py pins.
    pins = dict(re.findall(r'"(dagster-[a-z0-9-]+)==([0-9.]+)"', text))
    assert set(pins) >= {"dagster-postgres", "dagster-docker", "dagster-k8s"}
    assert set(pins.values()) == {lib_version(setup_dagster_pin())}


# --- deploy/helm ---------------------------------------------------------------------------------------------------

# Key names of the official chart's values schema (helm/dagster/schema in the dagster repository, chart 1.13): the
# sections set here, each with the keys it allows (the sections are closed: an unknown key fails `helm install`).
HELM_TOP_KEYS = {
    "dagsterWebserver",
    "dagster-user-deployments",
    "postgresql",
    "generatePostgresqlPasswordSecret",
    "generateCeleryConfigSecret",
    "rabbitmq",
    "redis",
    "flower",
    "ingress",
    "imagePullSecrets",
    "computeLogManager",
    "scheduler",
    "runLauncher",
    "pythonLogs",
    "dagsterDaemon",
    "busybox",
    "migrate",
    "telemetry",
    "serviceAccount",
    "global",
    "retention",
    "concurrency",
    "additionalInstanceConfig",
}
HELM_SECTION_KEYS = {
    ("global",): {
        "postgresqlSecretName",
        "dagsterHome",
        "serviceAccountName",
        "celeryConfigSecretName",
        "dagsterInstanceConfigMap",
    },
    ("postgresql",): {
        "postgresqlScheme",
        "image",
        "enabled",
        "postgresqlHost",
        "postgresqlUsername",
        "postgresqlPassword",
        "postgresqlDatabase",
        "postgresqlParams",
        "service",
    },
    ("dagster-user-deployments",): {"enabled", "enableSubchart", "imagePullSecrets", "deployments"},
    ("runLauncher",): {"type", "config"},
    ("runLauncher", "config"): {"celeryK8sRunLauncher", "k8sRunLauncher", "customRunLauncher"},
    ("runLauncher", "config", "k8sRunLauncher"): {
        "image",
        "imagePullPolicy",
        "jobNamespace",
        "loadInclusterConfig",
        "kubeconfigFile",
        "envConfigMaps",
        "envSecrets",
        "envVars",
        "volumeMounts",
        "volumes",
        "labels",
        "failPodOnRunFailure",
        "resources",
        "schedulerName",
        "securityContext",
        "runK8sConfig",
    },
    ("runLauncher", "config", "k8sRunLauncher", "runK8sConfig"): {
        "containerConfig",
        "podSpecConfig",
        "podTemplateSpecMetadata",
        "jobSpecConfig",
        "jobMetadata",
    },
    ("dagsterDaemon",): {
        "enabled",
        "image",
        "runCoordinator",
        "heartbeatTolerance",
        "env",
        "envConfigMaps",
        "envSecrets",
        "deploymentLabels",
        "labels",
        "nodeSelector",
        "affinity",
        "tolerations",
        "podSecurityContext",
        "securityContext",
        "resources",
        "checkDbReadyInitContainer",
        "livenessProbe",
        "readinessProbe",
        "startupProbe",
        "annotations",
        "runMonitoring",
        "runRetries",
        "sensors",
        "schedules",
        "backfills",
        "schedulerName",
        "logFormat",
        "volumeMounts",
        "volumes",
        "initContainerResources",
        "extraContainers",
        "extraPrependedInitContainers",
    },
    ("dagsterDaemon", "runCoordinator"): {"enabled", "type", "config"},
    ("dagsterDaemon", "runRetries"): {"enabled", "maxRetries", "retryOnAssetOrOpFailure"},
    ("dagsterDaemon", "sensors"): {"useThreads", "numWorkers", "numSubmitWorkers"},
    ("dagsterDaemon", "schedules"): {"useThreads", "numWorkers", "numSubmitWorkers"},
    ("dagsterWebserver",): {
        "dbStatementTimeout",
        "dbPoolRecycle",
        "logLevel",
        "schedulerName",
        "volumeMounts",
        "volumes",
        "pathPrefix",
        "replicaCount",
        "image",
        "nameOverride",
        "service",
        "workspace",
        "env",
        "envConfigMaps",
        "envSecrets",
        "deploymentLabels",
        "labels",
        "nodeSelector",
        "affinity",
        "tolerations",
        "podSecurityContext",
        "securityContext",
        "resources",
        "readinessProbe",
        "livenessProbe",
        "startupProbe",
        "annotations",
        "enableReadOnly",
    },
    ("concurrency",): {"enabled", "pools", "runs"},
    ("concurrency", "pools"): {"defaultLimit", "granularity", "opGranularityRunBuffer"},
    ("concurrency", "runs"): {"maxConcurrentRuns", "tagConcurrencyLimits"},
    ("computeLogManager",): {"type", "config"},
    ("computeLogManager", "config"): {
        "azureBlobComputeLogManager",
        "gcsComputeLogManager",
        "s3ComputeLogManager",
        "customComputeLogManager",
    },
    ("computeLogManager", "config", "s3ComputeLogManager"): {
        "localDir",
        "prefix",
        "useSsl",
        "verify",
        "verifyCertPath",
        "endpointUrl",
        "skipEmptyFiles",
        "uploadInterval",
        "uploadExtraArgs",
        "showUrlOnly",
        "region",
        "bucket",
    },
    ("retention",): {"enabled", "sensor", "schedule", "autoMaterialize"},
    ("retention", "sensor"): {"purgeAfterDays"},
    ("retention", "sensor", "purgeAfterDays"): {"skipped", "success", "failure", "started"},
    ("telemetry",): {"enabled"},
}
USER_DEPLOYMENT_KEYS = {
    "name",
    "image",
    "port",
    "dagsterApiGrpcArgs",
    "codeServerArgs",
    "includeConfigInLaunchedRuns",
    "env",
    "envConfigMaps",
    "envSecrets",
    "annotations",
    "nodeSelector",
    "affinity",
    "tolerations",
    "podSecurityContext",
    "securityContext",
    "resources",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "labels",
    "volumeMounts",
    "volumes",
    "schedulerName",
}
TAG_LIMIT_KEYS = {"key", "value", "limit"}
IMAGE_KEYS = {"repository", "tag", "pullPolicy"}


def section(values: dict, path: tuple[str, ...]):
    for key in path:
        if not isinstance(values, dict) or key not in values:
            return None
        values = values[key]
    return values


def test_helm_values_use_only_keys_the_chart_knows():
    values = helm_values()
    assert set(values) <= HELM_TOP_KEYS, sorted(set(values) - HELM_TOP_KEYS)
    for path, allowed in HELM_SECTION_KEYS.items():
        found = section(values, path)
        if isinstance(found, dict):
            assert set(found) <= allowed, f"{'.'.join(path)}: unknown keys {sorted(set(found) - allowed)}"
    for deployment in values["dagster-user-deployments"]["deployments"]:
        assert set(deployment) <= USER_DEPLOYMENT_KEYS, sorted(set(deployment) - USER_DEPLOYMENT_KEYS)
        assert set(deployment["image"]) == IMAGE_KEYS
    for limit in values["concurrency"]["runs"]["tagConcurrencyLimits"]:
        assert set(limit) <= TAG_LIMIT_KEYS


def manifests(name: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all((HELM / name).read_text()) if doc]


def test_helm_values_have_what_the_chart_needs_for_this_deployment():
    values = helm_values()
    # An external PostgreSQL, its password from a Secret the chart does not generate.
    postgres = values["postgresql"]
    assert (
        postgres["enabled"] is False
        and postgres["postgresqlHost"]
        and postgres["postgresqlScheme"] == ("postgresql+psycopg2")
    )
    assert "postgresqlPassword" not in postgres
    assert values["generatePostgresqlPasswordSecret"] is False
    secrets = {doc["metadata"]["name"]: doc for doc in manifests("secret.example.yaml") if doc["kind"] == "Secret"}
    assert "postgresql-password" in secrets[values["global"]["postgresqlSecretName"]]["stringData"]
    [configmap] = [doc for doc in manifests("configmap.yaml") if doc["kind"] == "ConfigMap"]
    [pvc] = [doc for doc in manifests("pvc.yaml") if doc["kind"] == "PersistentVolumeClaim"]
    assert "ReadWriteMany" in pvc["spec"]["accessModes"]

    # The code server: the project's module on port 4000, with the configuration and the secrets.
    users = values["dagster-user-deployments"]
    assert users["enabled"] is True
    [deployment] = users["deployments"]
    assert deployment["port"] == CODE_SERVER_PORT
    assert module_exists(grpc_module(deployment["dagsterApiGrpcArgs"]))
    assert deployment["image"]["tag"] != "latest"

    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    k8s = launcher["config"]["k8sRunLauncher"]
    # Required by the chart's schema once k8sRunLauncher is given (the chart's defaults fill them otherwise).
    assert {"imagePullPolicy", "loadInclusterConfig", "envConfigMaps", "envSecrets", "envVars"} <= set(k8s)
    requests = k8s["runK8sConfig"]["containerConfig"]["resources"]["requests"]
    assert requests["cpu"] and requests["memory"]
    assert k8s["runK8sConfig"]["jobSpecConfig"]["backoffLimit"] == 0, "Kubernetes must not restart a run's pod"

    for owner in (deployment, k8s, values["dagsterDaemon"]):
        assert {ref["name"] for ref in owner["envConfigMaps"]} == {configmap["metadata"]["name"]}
        assert {ref["name"] for ref in owner["envSecrets"]} <= set(secrets)
    for owner in (deployment, k8s):
        claims = {volume["persistentVolumeClaim"]["claimName"] for volume in owner["volumes"]}
        assert claims == {pvc["metadata"]["name"]}
        assert [mount["mountPath"] for mount in owner["volumeMounts"]] == [STATE_MOUNT]

    # The configuration: every project variable but the secrets, the same as compose's.
    data = configmap["data"]
    secret_keys = {key for doc in secrets.values() for key in doc["stringData"]}
    assert set(data) | secret_keys >= project_variables() | {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert not any(SECRET_NAME.search(key) for key in data)
    assert all(isinstance(value, str) for value in data.values()), "ConfigMap values must be strings"
    for name in ("CRYPTO_SPOOL_DIR", "CRYPTO_WEIGHT_BUDGET_DIR", "DBT_DUCKDB_PATH"):
        assert data[name] == env_example()[name]


def snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def test_helm_instance_settings_mirror_the_compose_instance():
    values, config = helm_values(), instance()
    daemon = values["dagsterDaemon"]
    monitoring = {snake(key): value for key, value in daemon["runMonitoring"].items()}
    assert monitoring.pop("start_timeout_seconds") >= config["run_monitoring"]["start_timeout_seconds"]
    assert monitoring == {k: v for k, v in config["run_monitoring"].items() if k != "start_timeout_seconds"}
    assert {snake(key): value for key, value in daemon["runRetries"].items()} == config["run_retries"]
    assert daemon["runCoordinator"].get("config") is None, "run queue limits belong under `concurrency`"

    concurrency = values["concurrency"]
    assert concurrency["enabled"] is True
    assert {snake(key): value for key, value in concurrency["pools"].items()} == config["concurrency"]["pools"]
    runs = concurrency["runs"]
    assert runs["maxConcurrentRuns"] == config["concurrency"]["runs"]["max_concurrent_runs"]
    assert runs["tagConcurrencyLimits"] == config["concurrency"]["runs"]["tag_concurrency_limits"]

    retention = values["retention"]["sensor"]["purgeAfterDays"]
    assert {key: retention[key] for key in config["retention"]["sensor"]["purge_after_days"]} == config["retention"][
        "sensor"
    ]["purge_after_days"]
    s3_logs = values["computeLogManager"]["config"]["s3ComputeLogManager"]
    assert s3_logs["uploadInterval"] == config["compute_logs"]["config"]["upload_interval"]
    assert values["telemetry"] == config["telemetry"]
