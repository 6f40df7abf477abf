"""The chart renders, lints and validates for every values set, and renders what the issue asks."""

from __future__ import annotations

import base64
import subprocess
import sys

import kubernetes_validate
import pytest
import yaml
from aitestbed.settings import parse_settings

from .conftest import (
    CHART,
    FULLNAME,
    KUBERNETES_VERSION,
    MATRIX,
    NAMESPACE,
    WORKLOADS,
    containers,
    run_helm,
    template,
)

pytestmark = pytest.mark.chart

HUB = f"{FULLNAME}-hub"
METADATA = "169.254.169.254/32"


@pytest.mark.parametrize("name", MATRIX)
def test_helm_lint_passes(helm, renders, name):
    done = run_helm(
        helm, "lint", str(CHART), "--strict", "--values", str(renders[name].values_file)
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("version", ["1.27.0", KUBERNETES_VERSION, "1.35.0"])
@pytest.mark.parametrize("name", MATRIX)
def test_every_manifest_is_valid_kubernetes_in_strict_mode(renders, name, version):
    """From the oldest Kubernetes the chart supports (Chart.yaml kubeVersion) to a recent one."""
    validated = 0
    for obj in renders[name].objects:
        if obj["apiVersion"].startswith(("monitoring.coreos.com/", "gateway.networking.k8s.io/")):
            continue  # CRDs (Prometheus Operator, Gateway API): not in the Kubernetes schemas
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{obj['kind']} {obj['metadata']['name']}: {error.message} at {error.path}")
        validated += 1
    assert validated >= 15


@pytest.mark.parametrize("name", MATRIX)
def test_every_container_is_locked_down_with_resources_and_probes(renders, name):
    workloads = [o for o in renders[name].objects if o["kind"] in WORKLOADS]
    assert workloads
    for obj in workloads:
        pod = obj["spec"]["template"]["spec"]
        where = f"{obj['kind']} {obj['metadata']['name']}"
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert pod["automountServiceAccountToken"] is False, where
        for container in containers(obj):
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            assert sc["runAsUser"] >= 10000, where
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), where
            assert "livenessProbe" in container and "readinessProbe" in container, where
            assert not container["image"].endswith(":latest"), where


@pytest.mark.parametrize("name", MATRIX)
def test_every_namespaced_object_is_in_the_release_namespace(renders, name):
    for obj in renders[name].objects:
        if obj["kind"] not in ("PriorityClass", "ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]["name"]


def test_hub_is_a_recreated_singleton_reading_the_settings_configmap(renders):
    r = renders["defaults"]
    hub = r.one("Deployment", HUB)
    assert hub["spec"]["strategy"] == {"type": "Recreate"}
    assert hub["spec"]["replicas"] == 1
    container = hub["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:2] == ["-f", "/usr/local/etc/aitestbed/jupyterhub_config.py"]
    env = {e["name"]: e for e in container["env"]}
    assert env["AITESTBED_SETTINGS"]["value"] == "/etc/aitestbed/settings.yaml"
    for var, key in [
        ("JPY_COOKIE_SECRET", "cookie-secret"),
        ("JUPYTERHUB_CRYPT_KEY", "crypt-key"),
        ("CONFIGPROXY_AUTH_TOKEN", "proxy-token"),
    ]:
        assert env[var]["valueFrom"]["secretKeyRef"] == {"name": f"{FULLNAME}-secrets", "key": key}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/etc/aitestbed/settings.yaml"]["subPath"] == "settings.yaml"
    assert "/srv/aitestbed" in mounts
    # The ConfigMap holds the site settings, with the deployment's keys set by the chart.
    settings = yaml.safe_load(r.one("ConfigMap", f"{FULLNAME}-settings")["data"]["settings.yaml"])
    assert settings["site"]["mode"] == "kubernetes"
    assert settings["site"]["state_dir"] == "/srv/aitestbed/state"
    assert [i["slug"] for i in settings["images"]] == ["python-cpu", "pytorch", "tensorflow"]
    assert r.one("PersistentVolumeClaim", f"{FULLNAME}-hub-state")


@pytest.mark.parametrize("name", MATRIX)
def test_the_rendered_settings_are_what_the_hub_loads(renders, name, tmp_path):
    """The ConfigMap passes the hub's own settings loader (schema and cross-references)."""
    text = renders[name].one("ConfigMap", f"{FULLNAME}-settings")["data"]["settings.yaml"]
    settings = parse_settings(text, tmp_path / "settings.yaml")
    assert settings.site.mode == "kubernetes"
    assert [image.slug for image in settings.images] == ["python-cpu", "pytorch", "tensorflow"]


def test_generated_secrets_have_the_shapes_jupyterhub_needs(renders):
    data = renders["defaults"].one("Secret", f"{FULLNAME}-secrets")["data"]
    for key in ("cookie-secret", "crypt-key"):
        value = base64.b64decode(data[key]).decode()
        assert len(bytes.fromhex(value)) == 32, key
    assert len(base64.b64decode(data["proxy-token"])) >= 32
    assert "slurm-jwt-key" not in data


def test_a_settings_change_restarts_the_hub(helm, renders, tmp_path):
    values = tmp_path / "v.yaml"
    values.write_text(yaml.safe_dump({"settings": {"site": {"name": "Another name"}}}))

    other = [d for d in yaml.safe_load_all(template(helm, values).stdout) if d]
    hub = next(o for o in other if o["kind"] == "Deployment" and o["metadata"]["name"] == HUB)
    before = renders["defaults"].one("Deployment", HUB)
    annotation = "checksum/settings"
    assert (
        hub["spec"]["template"]["metadata"]["annotations"][annotation]
        != before["spec"]["template"]["metadata"]["annotations"][annotation]
    )


def test_external_postgresql_urls_come_only_from_the_secret(renders):
    r = renders["external-postgresql"]
    assert not r.find("PersistentVolumeClaim")
    data = r.one("Secret", f"{FULLNAME}-secrets")["data"]
    portal_url = base64.b64decode(data["portal-database-url"]).decode()
    assert portal_url == (
        "postgresql+psycopg://aitestbed:p%40ss%2Fword%3Awith%26odd%3Dchars"
        "@postgres.db.svc:5432/portal?sslmode=require"
    )
    container = r.one("Deployment", HUB)["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["AITESTBED_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == (
        "portal-database-url"
    )
    assert "--JupyterHub.db_url=$(AITESTBED_HUB_DATABASE_URL)" in container["args"]
    assert "p@ss" not in r.one("ConfigMap", f"{FULLNAME}-settings")["data"]["settings.yaml"]
    policy = r.one("NetworkPolicy", HUB)
    assert {
        "to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
        "ports": [{"port": 5432, "protocol": "TCP"}],
    } in policy["spec"]["egress"]


def test_oidc_client_secret_is_a_mounted_file(renders):
    r = renders["oidc-login"]
    pod = r.one("Deployment", HUB)["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "oidc")
    assert volume["secret"]["items"] == [{"key": "oidc-client-secret", "path": "client-secret"}]
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["oidc"] == "/etc/aitestbed/oidc"
    data = r.one("Secret", f"{FULLNAME}-secrets")["data"]
    assert base64.b64decode(data["oidc-client-secret"]) == b"from-the-identity-provider"


def test_slurm_gets_a_generated_jwt_key_and_network_access(renders):
    r = renders["slurm-enabled"]
    data = r.one("Secret", f"{FULLNAME}-secrets")["data"]
    assert len(base64.b64decode(data["slurm-jwt-key"])) >= 32
    slurm_rule = {
        "to": [{"ipBlock": {"cidr": "10.1.2.3/32"}}],
        "ports": [{"port": 6820, "protocol": "TCP"}],
    }
    assert slurm_rule in r.one("NetworkPolicy", HUB)["spec"]["egress"]
    assert slurm_rule in r.one("NetworkPolicy", f"{FULLNAME}-singleuser")["spec"]["egress"]
    assert (
        slurm_rule
        not in renders["defaults"].one("NetworkPolicy", f"{FULLNAME}-singleuser")["spec"]["egress"]
    )


def test_ingress_serves_tls_with_cert_manager(renders):
    ingress = renders["ingress-tls"].one("Ingress", FULLNAME)
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt"
    assert ingress["spec"]["tls"] == [{"hosts": ["portal.example.org"], "secretName": "portal-tls"}]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == f"{FULLNAME}-proxy-public"
    assert not renders["defaults"].find("Ingress")


def test_gpu_images_are_pre_pulled_only_on_gpu_nodes(renders):
    pullers = {o["metadata"]["name"]: o for o in renders["defaults"].find("DaemonSet")}
    assert set(pullers) == {f"{FULLNAME}-pull-{s}" for s in ("python-cpu", "pytorch", "tensorflow")}
    for slug in ("pytorch", "tensorflow"):
        pod = pullers[f"{FULLNAME}-pull-{slug}"]["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert "nodeSelector" not in pullers[f"{FULLNAME}-pull-python-cpu"]["spec"]["template"]["spec"]
    without_gpus = renders["no-gpu-nodes"].find("DaemonSet")
    assert [o["metadata"]["name"] for o in without_gpus] == [f"{FULLNAME}-pull-python-cpu"]


def test_placeholders_have_the_lowest_priority_and_never_preempt(renders):
    r = renders["everything"]
    classes = {o["metadata"]["name"]: o for o in r.find("PriorityClass")}
    core, user, placeholder = (classes[f"{FULLNAME}-{n}"] for n in ("core", "user", "placeholder"))
    assert core["value"] > user["value"] > placeholder["value"]
    assert placeholder["preemptionPolicy"] == "Never"
    deployment = r.one("Deployment", f"{FULLNAME}-placeholder")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == f"{FULLNAME}-placeholder"
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert (
        r.one("PodDisruptionBudget", f"{FULLNAME}-placeholder")["spec"]["maxUnavailable"] == "100%"
    )


def test_user_pods_talk_only_to_hub_proxy_dns_and_never_to_the_metadata_address(renders):
    policy = renders["defaults"].one("NetworkPolicy", f"{FULLNAME}-singleuser")["spec"]
    assert policy["podSelector"] == {
        "matchLabels": {"app": "aitestbed", "component": "singleuser-server"}
    }
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    sources = [
        peer["podSelector"]["matchLabels"]["component"] for peer in policy["ingress"][0]["from"]
    ]
    assert sorted(sources) == ["hub", "proxy"]
    assert not any("ipBlock" in str(rule) for rule in policy["egress"])  # no CIDR by default
    internet = renders["everything"].one("NetworkPolicy", f"{FULLNAME}-singleuser")["spec"]
    assert {
        "ipBlock": {
            "cidr": "0.0.0.0/0",
            "except": [
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "169.254.0.0/16",
                "100.64.0.0/10",
            ],
        }
    } in internet["egress"][-2]["to"]
    assert internet["egress"][-1] == {"to": [{"ipBlock": {"cidr": "10.30.0.0/16"}}]}


def test_every_cidr_that_contains_the_metadata_address_excepts_it(renders):
    for render in renders.values():
        for policy in render.find("NetworkPolicy"):
            for rule in policy["spec"].get("egress", []):
                for peer in rule.get("to", []):
                    block = peer.get("ipBlock")
                    if block and block["cidr"] in ("0.0.0.0/0", "169.0.0.0/8", "169.254.0.0/16"):
                        assert METADATA in block["except"] or "169.254.0.0/16" in block["except"], (
                            render.name,
                            policy["metadata"]["name"],
                        )


def test_kubespawner_rbac_is_namespaced_and_minimal(renders, helm, tmp_path):
    r = renders["defaults"]
    # Cluster-wide: list nodes and pods (free capacity), nothing else.
    capacity = f"{HUB}-{NAMESPACE}-capacity"
    assert r.one("ClusterRole", capacity)["rules"] == [
        {"apiGroups": [""], "resources": ["nodes", "pods"], "verbs": ["list"]}
    ]
    binding = r.one("ClusterRoleBinding", capacity)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": HUB, "namespace": NAMESPACE}]
    values = tmp_path / "v.yaml"
    values.write_text(yaml.safe_dump({"hub": {"rbac": {"readClusterCapacity": False}}}))
    off = [d for d in yaml.safe_load_all(template(helm, values).stdout) if d]
    assert not [o for o in off if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    settings = next(o for o in off if o["kind"] == "ConfigMap")["data"]["settings.yaml"]
    assert yaml.safe_load(settings)["kubernetes"]["read_cluster_capacity"] is False
    rules = r.one("Role", HUB)["rules"]
    granted = {(res, verb) for rule in rules for res in rule["resources"] for verb in rule["verbs"]}
    assert ("pods", "create") in granted and ("persistentvolumeclaims", "create") in granted
    assert not any(res == "secrets" or "*" in (res, verb) for res, verb in granted)
    assert ("events", "create") not in granted


def test_notes_tell_the_operator_what_to_do(helm, renders):
    done = run_helm(
        helm,
        "install",
        "portal",
        str(CHART),
        "--dry-run=client",
        "--namespace",
        NAMESPACE,
        "--values",
        str(renders["slurm-enabled"].values_file),
    )
    assert done.returncode == 0, done.stderr
    notes = done.stdout.split("NOTES:", 1)[1]
    assert f"rollout status deployment/{HUB}" in notes
    assert "jwt_hs256.key" in notes
    assert "nobody can log in" in notes


def test_helm_template_refuses_an_oidc_login_without_a_client_secret(helm, tmp_path):
    values = tmp_path / "v.yaml"
    values.write_text(yaml.safe_dump({"settings": {"authentication": {"kind": "oidc"}}}))

    done = template(helm, values)
    assert done.returncode != 0
    assert "oidc.clientSecret" in done.stderr


def test_yamllint_accepts_the_chart_values_and_the_catalog():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "yamllint",
            "-d",
            "{extends: relaxed, rules: {line-length: {max: 120}}}",
            "--strict",
            str(CHART / "values.yaml"),
            str(CHART / ".checkov.yaml"),
            str(CHART.parent.parent / "images" / "catalog.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_operator_features_render_where_they_belong(renders):
    r = renders["operator-features"]
    pod = r.one("Deployment", HUB)["spec"]["template"]["spec"]
    hub = pod["containers"][0]
    assert hub["args"][-2:] == ["--JupyterHub.log_level=DEBUG", "--Spawner.debug=True"]
    env = {e["name"]: e for e in hub["env"]}
    assert env["REQUESTS_CA_BUNDLE"] == {
        "name": "REQUESTS_CA_BUNDLE",
        "value": "/etc/ssl/internal/ca.crt",
    }
    assert env["API_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "other", "key": "api-key"}}
    assert env["AITESTBED_EXTRA_CONFIG_DIR"]["value"] == "/etc/aitestbed/extra-config"
    mounts = {m["mountPath"]: m for m in hub["volumeMounts"]}
    assert mounts["/etc/ssl/internal"]["name"] == "internal-ca"
    assert mounts["/etc/aitestbed/banner.txt"] == {
        "name": "extra-files",
        "mountPath": "/etc/aitestbed/banner.txt",
        "subPath": "banner.txt",
        "readOnly": True,
    }
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["internal-ca"] == {"name": "internal-ca", "configMap": {"name": "internal-ca"}}
    assert volumes["extra-config"]["configMap"]["name"] == f"{HUB}-extra-config"
    extra = r.one("ConfigMap", f"{HUB}-extra-config")["data"]
    assert extra == {"10-timeout.py": "c.Spawner.start_timeout = 900"}
    assert r.one("Secret", f"{HUB}-files")["stringData"] == {"banner.txt": "hello"}
    assert hub["startupProbe"] == {
        "httpGet": {"path": "/hub/health", "port": "hub"},
        "periodSeconds": 10,
        "failureThreshold": 90,
    }
    assert hub["livenessProbe"]["timeoutSeconds"] == 10
    account = r.one("ServiceAccount", HUB)["metadata"]["annotations"]
    assert account == {"iam.gke.io/gcp-service-account": "hub@p.iam"}
    # Sessions: image pull secrets, CPU node pool (through the settings the hub reads).
    settings = yaml.safe_load(r.one("ConfigMap", f"{FULLNAME}-settings")["data"]["settings.yaml"])
    assert settings["kubernetes"]["image_pull_secrets"] == ["regcred"]
    assert settings["kubernetes"]["cpu_node_selector"] == {"pool": "cpu"}
    assert settings["kubernetes"]["cpu_tolerations"][0]["key"] == "pool"
    assert settings["kubernetes"]["cpu_node_affinity_preferred"][0]["weight"] == 100
    placeholder = r.one("Deployment", f"{FULLNAME}-placeholder")["spec"]["template"]["spec"]
    assert placeholder["imagePullSecrets"] == [{"name": "regcred"}]
    # HTTPS on the proxy, and an HTTPRoute.
    proxy = r.one("Deployment", f"{FULLNAME}-proxy")["spec"]["template"]["spec"]
    command = proxy["containers"][0]["command"]
    assert "--port=8443" in command and "--redirect-port=8000" in command
    assert "--ssl-cert=/etc/aitestbed/tls/tls.crt" in command and "--log-level=debug" in command
    assert proxy["volumes"][0]["secret"]["secretName"] == "portal-tls"
    ports = r.one("Service", f"{FULLNAME}-proxy-public")["spec"]["ports"]
    assert [(p["port"], p["targetPort"]) for p in ports] == [(80, "http"), (443, "https")]
    route = r.one("HTTPRoute", FULLNAME)["spec"]
    assert route["parentRefs"] == [{"name": "public", "namespace": "gateways"}]
    assert route["rules"][0]["backendRefs"] == [{"name": f"{FULLNAME}-proxy-public", "port": 80}]
    assert not renders["defaults"].find("HTTPRoute")


def test_a_changed_secret_restarts_the_hub(helm, tmp_path):
    def checksum(secret: str) -> str:
        values = tmp_path / "v.yaml"
        values.write_text(
            yaml.safe_dump(
                {
                    "settings": MATRIX["oidc-login"]["settings"],
                    "oidc": {"clientSecret": secret},
                    "hub": {"extraConfig": {"a": "pass"}},
                }
            )
        )
        rendered = [d for d in yaml.safe_load_all(template(helm, values).stdout) if d]
        hub = next(
            o for o in rendered if o["kind"] == "Deployment" and o["metadata"]["name"] == HUB
        )
        return hub["spec"]["template"]["metadata"]["annotations"]

    first, second = checksum("first-secret"), checksum("rotated-secret")
    assert checksum("first-secret") == first, "the same values restart nothing"
    assert first["checksum/secret"] != second["checksum/secret"]
    assert first["checksum/settings"] == second["checksum/settings"]
    assert first["checksum/extra"] == second["checksum/extra"]


def test_the_user_scheduler_packs_sessions_and_placeholders_onto_the_fullest_nodes(renders):
    r = renders["operator-features"]
    name = f"{FULLNAME}-user-scheduler"
    config = yaml.safe_load(r.one("ConfigMap", name)["data"]["config.yaml"])
    assert config["kind"] == "KubeSchedulerConfiguration"
    (profile,) = config["profiles"]
    assert profile["schedulerName"] == name
    assert profile["plugins"]["score"]["disabled"] == [{"name": "NodeResourcesBalancedAllocation"}]
    strategy = profile["pluginConfig"][0]["args"]["scoringStrategy"]
    assert strategy["type"] == "MostAllocated"
    assert {"name": "nvidia.com/gpu", "weight": 10} in strategy["resources"]
    # Sessions (through the settings) and placeholders use it.
    settings = yaml.safe_load(r.one("ConfigMap", f"{FULLNAME}-settings")["data"]["settings.yaml"])
    assert settings["kubernetes"]["scheduler_name"] == name
    placeholder = r.one("Deployment", f"{FULLNAME}-placeholder")["spec"]["template"]["spec"]
    assert placeholder["schedulerName"] == name
    # The cluster's own scheduler roles, for its own account only.
    roles = sorted(
        b["roleRef"]["name"] for b in r.find("ClusterRoleBinding") if name in b["metadata"]["name"]
    )
    assert roles == ["system:kube-scheduler", "system:volume-scheduler"]
    pod = r.one("Deployment", name)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == name and pod["automountServiceAccountToken"] is False
    assert not renders["defaults"].find("Deployment", name)
    default_settings = renders["defaults"].one("ConfigMap", f"{FULLNAME}-settings")["data"]
    assert "scheduler_name" not in default_settings["settings.yaml"]


def test_the_pre_upgrade_hook_pulls_every_image_and_waits_for_it(renders):
    r = renders["operator-features"]
    hooks = [o for o in r.objects if "helm.sh/hook" in o["metadata"].get("annotations", {})]
    assert {o["metadata"]["annotations"]["helm.sh/hook"] for o in hooks} == {
        "pre-install,pre-upgrade"
    }
    pullers = [o for o in hooks if o["kind"] == "DaemonSet"]
    assert sorted(o["metadata"]["name"] for o in pullers) == [
        f"{FULLNAME}-hook-pull-{s}" for s in ("python-cpu", "pytorch", "tensorflow")
    ]
    job = r.one("Job", f"{FULLNAME}-hook-awaiter")
    # The pullers first (weight -10), then the Job that waits for them.
    assert job["metadata"]["annotations"]["helm.sh/hook-weight"] == "0"
    assert {o["metadata"]["annotations"]["helm.sh/hook-weight"] for o in pullers} == {"-10"}
    assert job["spec"]["activeDeadlineSeconds"] == 900
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "aitestbed.hub.image_awaiter"]
    env = {e["name"]: e["value"] for e in container["env"]}
    selector = dict(term.split("=") for term in env["AITESTBED_PULLER_SELECTOR"].split(","))
    for puller in pullers:  # the awaiter's selector finds exactly the hook pullers
        assert selector.items() <= puller["metadata"]["labels"].items()
    for puller in r.find("DaemonSet"):
        if puller not in pullers:
            assert not selector.items() <= puller["metadata"]["labels"].items()
    # It may list DaemonSets in the namespace, nothing else.
    role = r.one("Role", f"{FULLNAME}-hook-awaiter")
    assert role["rules"] == [
        {"apiGroups": ["apps"], "resources": ["daemonsets"], "verbs": ["list"]}
    ]
    assert not [o for o in renders["defaults"].objects if o["kind"] == "Job"]
