"""Which pods reach which, computed from the rendered NetworkPolicies (tests/chart/netpol.py),
against the matrix docs/deploy.md promises (Security), for the default values and each
documented option. The pods are the chart's own (labels read from the rendered workloads),
a session pod labelled as KubeSpawner labels it (tests/chart/test_production_path.py checks
those labels on a real start), the cluster DNS, Prometheus, an ingress controller, a pod of
another application, and addresses outside the pods: PostgreSQL, slurmrestd, the Kubernetes
API, the internet, private ranges, a kubelet, the cloud metadata address."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml

from .conftest import FULLNAME, NAMESPACE, ROOT, Render, template
from .netpol import Address, Cluster, Pod

pytestmark = pytest.mark.chart

METADATA = "169.254.169.254"
SESSION_LABELS = {
    # KubeSpawner's labels with the portal's common_labels (aitestbed.hub.setup).
    "app": "aitestbed",
    "heritage": "jupyterhub",
    "component": "singleuser-server",
    "hub.jupyter.org/username": "alice",
}

OUTSIDE = {
    "node-local-dns": Address("node-local-dns", "169.254.20.10"),
    "other-dns": Address("other-dns", "8.8.8.8"),
    "postgresql": Address("postgresql", "10.20.0.5"),
    "slurmrestd": Address("slurmrestd", "10.1.2.3"),
    "kube-api": Address("kube-api", "10.96.0.1"),
    "internet": Address("internet", "93.184.216.34"),
    "public-range-pods": Address("public-range-pods", "11.0.0.7"),
    "private-db": Address("private-db", "192.168.10.10"),
    "kubelet": Address("kubelet", "10.0.0.10"),
    "cgnat": Address("cgnat", "100.64.3.3"),
    "metadata": Address("metadata", METADATA),
    "client": Address("client", "203.0.113.5"),
}

# (target, port, protocol) of every service in the picture.
TARGETS = {
    "hub-api": ("hub", 8081, "TCP"),
    "portal": ("hub", 8090, "TCP"),
    "proxy-public": ("proxy", 8000, "TCP"),
    "proxy-api": ("proxy", 8001, "TCP"),
    "session": ("session", 8888, "TCP"),
    "placeholder": ("placeholder", 8888, "TCP"),
    "puller": ("puller", 8888, "TCP"),
    "cluster-dns": ("kube-dns", 53, "UDP"),
    "node-local-dns": ("node-local-dns", 53, "UDP"),
    "other-dns": ("other-dns", 53, "UDP"),
    "postgresql": ("postgresql", 5432, "TCP"),
    "slurmrestd": ("slurmrestd", 6820, "TCP"),
    "kube-api": ("kube-api", 443, "TCP"),
    "internet": ("internet", 443, "TCP"),
    "public-range-pods": ("public-range-pods", 443, "TCP"),
    "private-db": ("private-db", 5432, "TCP"),
    "kubelet": ("kubelet", 10250, "TCP"),
    "cgnat": ("cgnat", 443, "TCP"),
    "metadata": ("metadata", 80, "TCP"),
    "other-app": ("other-app", 5432, "TCP"),
}
CHART_PODS = ("hub", "proxy", "session", "placeholder", "puller")
SOURCES = (
    "hub",
    "proxy",
    "session",
    "placeholder",
    "puller",
    "ingress-controller",
    "prometheus",
    "other-app",
    "client",
)


def pods(render: Render) -> dict[str, Pod]:
    """The chart's pods with their rendered labels, and the cluster's other pods."""

    def labels(kind: str, name: str) -> dict[str, str]:
        return render.one(kind, name)["spec"]["template"]["metadata"]["labels"]

    puller = render.find("DaemonSet")[0]["metadata"]["name"]
    found = {
        "hub": Pod("hub", NAMESPACE, labels("Deployment", f"{FULLNAME}-hub"), "10.244.0.2"),
        "proxy": Pod("proxy", NAMESPACE, labels("Deployment", f"{FULLNAME}-proxy"), "10.244.0.3"),
        "session": Pod("session", NAMESPACE, SESSION_LABELS, "10.244.0.4"),
        "puller": Pod("puller", NAMESPACE, labels("DaemonSet", puller), "10.244.0.5"),
        "kube-dns": Pod("kube-dns", "kube-system", {"k8s-app": "kube-dns"}, "10.244.0.10"),
        "prometheus": Pod("prometheus", "monitoring", {"app": "prometheus"}, "10.244.1.2"),
        "ingress-controller": Pod(
            "ingress-controller", "ingress-nginx", {"app": "ingress-nginx"}, "10.244.1.3"
        ),
        "other-app": Pod("other-app", "apps", {"app": "aitestbed-lookalike"}, "10.244.9.9"),
    }
    placeholder = render.find("Deployment", f"{FULLNAME}-placeholder")
    # Without the placeholder Deployment rendered, a pod with its labels stands in for it.
    placeholder_labels = (
        placeholder[0]["spec"]["template"]["metadata"]["labels"]
        if placeholder
        else {**found["puller"].labels, "component": "placeholder"}
    )
    found["placeholder"] = Pod("placeholder", NAMESPACE, placeholder_labels, "10.244.0.6")
    return found


def reachability(render: Render) -> set[tuple[str, str]]:
    cluster = Cluster(render.find("NetworkPolicy"))
    everyone = pods(render) | OUTSIDE
    allowed = set()
    for source in SOURCES:
        for name, (target, port, protocol) in TARGETS.items():
            if source == target or (source == "hub" and name in ("hub-api", "portal")):
                continue
            if source not in CHART_PODS and target not in CHART_PODS:
                continue  # traffic between things the chart does not install
            if cluster.allowed(everyone[source], everyone[target], port, protocol):
                allowed.add((source, name))
    return allowed


def promised(
    *,
    internet: bool = False,
    slurm: bool = False,
    database: bool = False,
    monitor: bool = False,
    node_local_dns: bool = False,
    cluster_cidrs: bool = False,
) -> set[tuple[str, str]]:
    """The table in docs/deploy.md (Security), as flows."""
    flows = {
        ("hub", "proxy-api"),
        ("hub", "session"),
        ("hub", "cluster-dns"),
        # hub.networkPolicy.egressCIDRs (0.0.0.0/0 on 443/6443): API server, OIDC issuer.
        ("hub", "kube-api"),
        ("hub", "internet"),
        ("hub", "public-range-pods"),
        ("hub", "cgnat"),
        ("proxy", "hub-api"),
        ("proxy", "portal"),
        ("proxy", "session"),
        ("proxy", "cluster-dns"),
        ("session", "hub-api"),
        ("session", "portal"),
        ("session", "cluster-dns"),
        # The proxy's public port is open to every client, in or outside the cluster; the
        # hub and the sessions reach the portal and the hub directly, never the public route.
        *((s, "proxy-public") for s in SOURCES if s not in ("proxy", "hub", "session")),
    }
    # Pre-pullers and placeholders neither send nor accept anything.
    flows = {f for f in flows if "placeholder" not in f and "puller" not in f}
    if internet:
        flows |= {("session", "internet"), ("session", "other-dns")}
        if not cluster_cidrs:
            flows.add(("session", "public-range-pods"))
    if slurm:
        flows |= {("hub", "slurmrestd"), ("session", "slurmrestd")}
    if database:
        flows.add(("hub", "postgresql"))
    if monitor:
        flows.add(("prometheus", "hub-api"))
    if node_local_dns:
        flows |= {(s, "node-local-dns") for s in ("hub", "proxy", "session")}
    return flows


OPTIONS = {
    "defaults": ({}, {}),
    "internet": ({"singleuser": {"networkPolicy": {"internet": True}}}, {"internet": True}),
    "internet-cluster-cidrs": (
        {
            "singleuser": {"networkPolicy": {"internet": True}},
            "networkPolicy": {"clusterCIDRs": ["11.0.0.0/16"]},
        },
        {"internet": True, "cluster_cidrs": True},
    ),
    "slurm": ({"slurm": {"enabled": True, "restdCIDRs": ["10.1.2.3/32"]}}, {"slurm": True}),
    "external-database": (
        {
            "externalDatabase": {
                "enabled": True,
                "host": "postgres.db",
                "password": "pw",
                "cidrs": ["10.20.0.0/16"],
            }
        },
        {"database": True},
    ),
    "service-monitor": ({"metrics": {"serviceMonitor": {"enabled": True}}}, {"monitor": True}),
    "node-local-dns": (
        {"networkPolicy": {"dns": {"cidrs": ["169.254.20.10/32"]}}},
        {"node_local_dns": True},
    ),
    "placeholders": ({"scheduling": {"placeholders": {"enabled": True}}}, {}),
}
DOCS_EXAMPLE = ROOT / "docs" / "examples" / "site-values.yaml"


def render_values(helm: str, values: dict | Path, tmp_path: Path) -> Render:
    if isinstance(values, dict):
        path = tmp_path / "values.yaml"
        path.write_text(yaml.safe_dump(values))
    else:
        path = values
    done = template(helm, path)
    assert done.returncode == 0, done.stderr
    objects = [d for d in yaml.safe_load_all(done.stdout) if d]
    return Render(path.name, path, done.stdout, objects)


@pytest.mark.parametrize("option", OPTIONS)
def test_reachability_is_what_the_docs_promise(helm, tmp_path, option):
    values, promise = OPTIONS[option]
    actual = reachability(render_values(helm, values, tmp_path))
    expected = promised(**promise)
    assert sorted(actual - expected) == [], "reachable but not promised"
    assert sorted(expected - actual) == [], "promised but not reachable"


def test_the_docs_example_site_reaches_what_the_docs_promise(helm, tmp_path):
    actual = reachability(render_values(helm, DOCS_EXAMPLE, tmp_path))
    assert actual == promised(internet=True, slurm=True, database=True, monitor=True)


def test_without_policies_everything_is_open_so_the_evaluator_can_fail(helm, tmp_path):
    """The evaluator itself: with the policies off, sessions reach the metadata address and
    the hub; a check that always said "no" would pass the tests above for the wrong reason."""
    values = {
        "hub": {"networkPolicy": {"enabled": False}},
        "proxy": {"networkPolicy": {"enabled": False}},
        "singleuser": {"networkPolicy": {"enabled": False}},
    }
    actual = reachability(render_values(helm, values, tmp_path))
    assert ("session", "metadata") in actual
    assert ("other-app", "hub-api") in actual
    assert ("session", "kubelet") in actual
    # The sleepers' policy is always there.
    assert ("placeholder", "internet") not in actual


# Issue 14: the metadata exception must hold for every CIDR that contains the address, not
# only 0.0.0.0/0, and must not be added to CIDRs that do not contain it.
CONTAINING = [
    "0.0.0.0/0",
    "128.0.0.0/1",
    "160.0.0.0/4",
    "169.0.0.0/8",
    "169.254.0.0/16",
    "169.254.128.0/17",
    "169.254.169.0/24",
    "169.254.169.248/29",
    "169.254.169.252/30",
]
NOT_CONTAINING = [
    "0.0.0.0/1",
    "10.0.0.0/8",
    "169.255.0.0/16",
    "169.253.0.0/16",
    "169.254.170.0/24",
    "169.254.169.0/25",
    "169.254.169.248/30",
    "170.0.0.0/8",
    "192.168.0.0/16",
]


def test_every_cidr_that_contains_the_metadata_address_excepts_exactly_it(helm, tmp_path):
    cidrs = CONTAINING + NOT_CONTAINING
    metadata = ipaddress.ip_address(METADATA)
    # The test's own lists are right (checked independently of the chart's arithmetic).
    assert all(metadata in ipaddress.ip_network(c) for c in CONTAINING)
    assert not any(metadata in ipaddress.ip_network(c) for c in NOT_CONTAINING)
    # singleuser refuses 0.0.0.0/0 (internet: true instead): the hub's list takes them all.
    values = {"hub": {"networkPolicy": {"egressCIDRs": cidrs}}}
    render = render_values(helm, values, tmp_path)
    policy = render.one("NetworkPolicy", f"{FULLNAME}-hub")
    rule = next(r for r in policy["spec"]["egress"] if r.get("ports", [{}])[0].get("port") == 443)
    blocks = {peer["ipBlock"]["cidr"]: peer["ipBlock"] for peer in rule["to"]}
    assert list(blocks) == cidrs
    for cidr in CONTAINING:
        assert blocks[cidr] == {"cidr": cidr, "except": [f"{METADATA}/32"]}, cidr
    for cidr in NOT_CONTAINING:
        assert blocks[cidr] == {"cidr": cidr}, cidr
    # And the evaluator agrees: the hub reaches none of it on 443, but the rest of each range.
    cluster = Cluster(render.find("NetworkPolicy"))
    hub = pods(render)["hub"]
    assert not cluster.allowed(hub, Address("metadata", METADATA), 443)
    assert cluster.allowed(hub, Address("neighbour", "169.254.169.253"), 443)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"singleuser": {"networkPolicy": {"egressCIDRs": ["0.0.0.0/0"]}}},
            "set singleuser.networkPolicy.internet: true for public addresses only",
        ),
        (
            {"singleuser": {"networkPolicy": {"egressCIDRs": ["169.254.169.254/32"]}}},
            "169.254.169.254/32 is the cloud metadata endpoint",
        ),
        (
            {"networkPolicy": {"dns": {"cidrs": ["169.254.169.254/32"]}}},
            "169.254.169.254/32 is the cloud metadata endpoint",
        ),
        (
            {"slurm": {"enabled": True, "restdCIDRs": ["169.254.169.254/32"]}},
            "169.254.169.254/32 is the cloud metadata endpoint",
        ),
    ],
)
def test_what_would_open_private_ranges_or_the_metadata_address_is_refused(
    helm, tmp_path, values, message
):
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    done = template(helm, path)
    assert done.returncode == 1
    assert message in done.stderr, done.stderr


def test_the_user_scheduler_talks_only_to_the_kubernetes_api_and_dns(helm, tmp_path):
    values = {"scheduling": {"userScheduler": {"enabled": True, "apiCIDRs": ["10.96.0.1/32"]}}}
    render = render_values(helm, values, tmp_path)
    labels = render.one("Deployment", f"{FULLNAME}-user-scheduler")["spec"]["template"]
    scheduler = Pod("scheduler", NAMESPACE, labels["metadata"]["labels"], "10.244.0.7")
    cluster = Cluster(render.find("NetworkPolicy"))
    everyone = pods(render) | OUTSIDE
    reached = {
        name
        for name, (target, port, protocol) in TARGETS.items()
        if cluster.allowed(scheduler, everyone[target], port, protocol)
    }
    assert reached == {"kube-api", "cluster-dns"}
    assert not any(cluster.allowed(everyone[source], scheduler, 10259) for source in SOURCES), (
        "nothing reaches the scheduler"
    )
