"""Render the Helm chart with the real helm binary, once per values set, for every chart test.

helm (v4) and checkov are installed into .tools/ by scripts/setup.sh --test
(scripts/install-helm.sh, scripts/install-checkov.sh).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "aitestbed"
TOOLS = ROOT / ".tools"
NAMESPACE = "aitestbed"
RELEASE = "portal"
FULLNAME = "portal-aitestbed"
KUBERNETES_VERSION = "1.30.0"

# The values matrix the issue asks for; each entry is rendered once per test session.
MATRIX: dict[str, dict[str, Any]] = {
    "defaults": {},
    "external-postgresql": {
        "externalDatabase": {
            "enabled": True,
            "host": "postgres.db.svc",
            "password": "p@ss/word:with&odd=chars",
            "cidrs": ["10.20.0.0/16"],
        }
    },
    "oidc-login": {
        "settings": {
            "authentication": {
                "kind": "oidc",
                "oidc": {
                    "issuer": "https://sso.example.org/realms/aitestbed",
                    "client_id": "aitestbed-portal",
                    "client_secret_file": "/etc/aitestbed/oidc/client-secret",
                },
            }
        },
        "oidc": {"clientSecret": "from-the-identity-provider"},
    },
    "slurm-enabled": {"slurm": {"enabled": True, "restdCIDRs": ["10.1.2.3/32"]}},
    "ingress-tls": {
        "ingress": {
            "enabled": True,
            "hosts": ["portal.example.org"],
            "tls": {
                "enabled": True,
                "secretName": "portal-tls",
                "certManager": {"clusterIssuer": "letsencrypt"},
            },
        }
    },
    "no-gpu-nodes": {
        "gpuNodes": {"enabled": False},
        "scheduling": {"placeholders": {"enabled": True, "replicas": 2}},
    },
    "datasets": {
        "settings": {
            "datasets": [
                {
                    "slug": "imagenet-1k",
                    "title": "ImageNet-1k",
                    "visibility": "public",
                    "storage": {"kind": "pvc", "claim": "datasets-ro", "sub_path": "imagenet"},
                },
                {
                    "slug": "notes",
                    "title": "Clinical notes",
                    "visibility": "public",
                    "terms": {"version": "1", "text": "Research only."},
                    "storage": {"kind": "nfs", "server": "nfs.example.org", "path": "/export/n"},
                },
            ]
        }
    },
    # What Zero to JupyterHub operators reach for (issue 15), all at once.
    "operator-features": {
        "imagePullSecrets": ["regcred"],
        "hub": {
            "debug": True,
            "extraEnv": {
                "REQUESTS_CA_BUNDLE": "/etc/ssl/internal/ca.crt",
                "API_KEY": {"valueFrom": {"secretKeyRef": {"name": "other", "key": "api-key"}}},
            },
            "extraVolumes": [{"name": "internal-ca", "configMap": {"name": "internal-ca"}}],
            "extraVolumeMounts": [
                {"name": "internal-ca", "mountPath": "/etc/ssl/internal", "readOnly": True}
            ],
            "extraFiles": {
                "banner.txt": {"mountPath": "/etc/aitestbed/banner.txt", "stringData": "hello"}
            },
            "extraConfig": {"10-timeout": "c.Spawner.start_timeout = 900"},
            "serviceAccount": {"annotations": {"iam.gke.io/gcp-service-account": "hub@p.iam"}},
            "probes": {
                "startup": {"periodSeconds": 10, "failureThreshold": 90},
                "readiness": {"periodSeconds": 10, "failureThreshold": 3},
                "liveness": {"periodSeconds": 30, "timeoutSeconds": 10, "failureThreshold": 4},
            },
        },
        "proxy": {
            "https": {"enabled": True, "secretName": "portal-tls"},
            "service": {"type": "LoadBalancer"},
        },
        "httpRoute": {
            "enabled": True,
            "parentRefs": [{"name": "public", "namespace": "gateways"}],
            "hostnames": ["portal.example.org"],
        },
        "singleuser": {
            "cpuNodeSelector": {"pool": "cpu"},
            "cpuTolerations": [
                {"key": "pool", "operator": "Equal", "value": "cpu", "effect": "NoSchedule"}
            ],
            "cpuNodeAffinityPreferred": [
                {
                    "weight": 100,
                    "preference": {
                        "matchExpressions": [
                            {"key": "nvidia.com/gpu.present", "operator": "DoesNotExist"}
                        ]
                    },
                }
            ],
        },
        "scheduling": {"placeholders": {"enabled": True}, "userScheduler": {"enabled": True}},
        "imagePuller": {"hook": {"enabled": True, "timeoutSeconds": 900}},
    },
    # Everything optional switched on at once, for the scanners.
    "everything": {
        "singleuser": {"networkPolicy": {"internet": True, "egressCIDRs": ["10.30.0.0/16"]}},
        "scheduling": {"placeholders": {"enabled": True, "gpu": True}},
        "metrics": {"serviceMonitor": {"enabled": True}},
        "slurm": {"enabled": True, "restdCIDRs": ["10.1.2.0/24"]},
        "proxy": {"service": {"type": "LoadBalancer"}},
    },
}


def find_tool(name: str, *candidates: Path) -> str:
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: run scripts/setup.sh --test.")
    return found


@pytest.fixture(scope="session")
def helm() -> str:
    return find_tool("helm", TOOLS / "bin" / "helm")


@pytest.fixture(scope="session")
def checkov() -> str:
    return find_tool("checkov", TOOLS / "checkov" / "bin" / "checkov")


@dataclass
class Render:
    """One `helm template` of the chart: its values file and the objects it produced."""

    name: str
    values_file: Path
    text: str
    objects: list[dict[str, Any]]

    def find(self, kind: str, name: str | None = None) -> list[dict[str, Any]]:
        return [
            o
            for o in self.objects
            if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
        ]

    def one(self, kind: str, name: str) -> dict[str, Any]:
        found = self.find(kind, name)
        assert len(found) == 1, f"{self.name}: expected one {kind} {name}, found {len(found)}"
        return found[0]


def run_helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=120)


def template(helm: str, values_file: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_helm(
        helm,
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBERNETES_VERSION,
        "--values",
        str(values_file),
        *extra,
    )


@pytest.fixture(scope="session")
def renders(helm: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Render]:
    """Every matrix entry rendered once (helm template is the slow part)."""
    workdir = tmp_path_factory.mktemp("renders")
    result = {}
    for name, values in MATRIX.items():
        values_file = workdir / f"{name}.values.yaml"
        values_file.write_text(yaml.safe_dump(values))
        done = template(helm, values_file)
        assert done.returncode == 0, f"helm template ({name}) failed:\n{done.stderr}"
        objects = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
        result[name] = Render(name, values_file, done.stdout, objects)
    return result


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    pod = obj["spec"]["template"]["spec"]
    return pod.get("initContainers", []) + pod["containers"]


WORKLOADS = ("Deployment", "DaemonSet", "StatefulSet")
