"""The pre-upgrade image awaiter's decision (the Helm chart's hook Job)."""

from __future__ import annotations

from aitestbed.hub.image_awaiter import pullers_ready


def daemonset(name, desired, ready, updated):
    return {
        "metadata": {"name": name},
        "status": {
            "desiredNumberScheduled": desired,
            "numberReady": ready,
            "updatedNumberScheduled": updated,
        },
    }


def test_ready_only_when_every_node_has_the_current_version():
    assert pullers_ready([]) == (False, "no image puller DaemonSet is there yet")
    assert pullers_ready([daemonset("pull-cpu", 3, 3, 3), daemonset("pull-gpu", 2, 2, 2)]) == (
        True,
        "2 images are on every node they may run on",
    )
    # Ready pods of the old version do not count, nor do new ones still pulling.
    assert pullers_ready([daemonset("pull-cpu", 3, 3, 1), daemonset("pull-gpu", 2, 1, 2)]) == (
        False,
        "still pulling: pull-cpu: 1 of 3 nodes; pull-gpu: 1 of 2 nodes",
    )
    # A DaemonSet with no node to run on (no GPU nodes yet) is done.
    assert pullers_ready([daemonset("pull-gpu", 0, 0, 0)])[0] is True
