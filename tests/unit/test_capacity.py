"""Free capacity per flavor from nodes and pods (pure arithmetic, no cluster)."""

from __future__ import annotations

from aitestbed.hub.capacity import FlavorDemand, free_capacity, pod_request
from aitestbed.hub.policy_spawner import no_capacity_reason

A100 = {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
H100 = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
MIG = "nvidia.com/mig-1g.10gb"


def node(name, labels, allocatable, ready=True, unschedulable=False):
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"unschedulable": True} if unschedulable else {},
        "status": {
            "allocatable": {"cpu": "96", **allocatable},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def gpu_node(name, labels, gpus, **state):
    return node(name, labels, {"nvidia.com/gpu": str(gpus)}, **state)


def pod(resource, amount, node_name=None, phase="Running", selector=None, use="limits"):
    spec = {"containers": [{"name": "notebook", "resources": {use: {resource: str(amount)}}}]}
    if node_name:
        spec["nodeName"] = node_name
    if selector:
        spec["nodeSelector"] = selector
    return {
        "metadata": {"name": f"p-{node_name}-{amount}"},
        "spec": spec,
        "status": {"phase": phase},
    }


GPU1 = FlavorDemand("a100x1", "nvidia.com/gpu", 1, A100)
GPU4 = FlavorDemand("a100x4", "nvidia.com/gpu", 4, A100)
H8 = FlavorDemand("h100x8", "nvidia.com/gpu", 8, H100)
MIG1 = FlavorDemand("a100-1g-10gb", MIG, 1, A100)
CPU = FlavorDemand("cpu-small", None)


def test_idle_cluster_counts_whole_sessions_per_node():
    nodes = [gpu_node("a", A100, 8), gpu_node("b", A100, 8), gpu_node("h", H100, 8)]
    result = free_capacity(nodes, [], [GPU1, GPU4, H8, CPU])
    assert result == {"a100x1": (16, 16), "a100x4": (4, 4), "h100x8": (1, 1), "cpu-small": None}


def test_running_pods_take_their_gpus_from_their_node():
    nodes = [gpu_node("a", A100, 8), gpu_node("b", A100, 8)]
    pods = [pod("nvidia.com/gpu", 3, "a"), pod("nvidia.com/gpu", 8, "b")]
    result = free_capacity(nodes, pods, [GPU1, GPU4])
    # 5 GPUs left on node a: five 1-GPU sessions but only one 4-GPU session.
    assert result == {"a100x1": (5, 16), "a100x4": (1, 4)}


def test_ended_pods_and_other_products_do_not_count():
    nodes = [gpu_node("a", A100, 8), gpu_node("h", H100, 8)]
    pods = [
        pod("nvidia.com/gpu", 8, "a", phase="Succeeded"),
        pod("nvidia.com/gpu", 8, "a", phase="Failed"),
        pod("nvidia.com/gpu", 8, "h"),
    ]
    assert free_capacity(nodes, pods, [GPU1, H8]) == {"a100x1": (8, 8), "h100x8": (0, 1)}


def test_mig_slices_are_their_own_resource():
    nodes = [node("m", A100, {MIG: "7"}), gpu_node("a", A100, 8)]
    pods = [pod(MIG, 1, "m"), pod(MIG, 1, "m"), pod("nvidia.com/gpu", 1, "a")]
    result = free_capacity(nodes, pods, [MIG1, GPU1])
    assert result == {"a100-1g-10gb": (5, 7), "a100x1": (7, 8)}


def test_no_mig_slices_anywhere_means_no_place():
    assert free_capacity([gpu_node("a", A100, 8)], [], [MIG1]) == {"a100-1g-10gb": (0, 0)}


def test_unready_and_cordoned_nodes_are_left_out():
    nodes = [
        gpu_node("a", A100, 8, ready=False),
        gpu_node("b", A100, 8, unschedulable=True),
        gpu_node("c", A100, 2),
    ]
    assert free_capacity(nodes, [], [GPU1]) == {"a100x1": (2, 2)}


def test_pending_pods_take_room_on_the_matching_nodes():
    nodes = [gpu_node("a", A100, 8), gpu_node("b", A100, 4), gpu_node("h", H100, 8)]
    pods = [
        pod("nvidia.com/gpu", 6, selector=A100),  # not yet bound: goes to the roomiest (a)
        pod("nvidia.com/gpu", 8, selector=H100),  # wants the H100 node, not ours
    ]
    result = free_capacity(nodes, pods, [GPU1, GPU4])
    assert result == {"a100x1": (6, 12), "a100x4": (1, 3)}


def test_requests_default_to_limits_and_are_summed_over_containers():
    both = pod("nvidia.com/gpu", 2, "a")
    both["spec"]["containers"].append(
        {"name": "sidecar", "resources": {"requests": {"nvidia.com/gpu": "1"}}}
    )
    assert pod_request(both, "nvidia.com/gpu") == 3
    assert pod_request(pod("nvidia.com/gpu", 2, "a", use="requests"), "nvidia.com/gpu") == 2
    assert pod_request({"spec": {"containers": [{"name": "x"}]}}, "nvidia.com/gpu") == 0


def test_refusal_says_whether_the_flavor_is_full_or_not_offered():
    assert "All 8 places for the flavor 'a100x1' are in use" in no_capacity_reason("a100x1", 8)
    assert "No node in service offers" in no_capacity_reason("a100-1g-10gb", 0)
