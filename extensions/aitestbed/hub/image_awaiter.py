"""Wait until the pre-upgrade image pullers have every curated image on every node.

The Helm chart's pre-install/pre-upgrade hook Job runs ``python -m aitestbed.hub.image_awaiter``
after its hook DaemonSets (one per curated image) started: the upgrade goes on only when
every node that may run a session has the new images, so the first sessions after an upgrade
start in seconds. The decision is the pure function :func:`pullers_ready`; ``main`` reads the
DaemonSets with the Job's service account token until it holds or the time is up.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import requests

ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def pullers_ready(daemonsets: list[dict[str, Any]]) -> tuple[bool, str]:
    """Whether every puller DaemonSet runs its current version, ready, on all its nodes;
    and what is still pulling (one line)."""
    if not daemonsets:
        return False, "no image puller DaemonSet is there yet"
    waiting = []
    for daemonset in daemonsets:
        status = daemonset.get("status") or {}
        desired = status.get("desiredNumberScheduled", 0)
        ready = min(status.get("numberReady", 0), status.get("updatedNumberScheduled", 0))
        if ready < desired:
            waiting.append(f"{daemonset['metadata']['name']}: {ready} of {desired} nodes")
    if waiting:
        return False, "still pulling: " + "; ".join(waiting)
    return True, f"{len(daemonsets)} images are on every node they may run on"


def main() -> int:
    namespace = (ACCOUNT / "namespace").read_text().strip()
    selector = os.environ["AITESTBED_PULLER_SELECTOR"]
    deadline = time.monotonic() + float(os.environ.get("AITESTBED_PULL_TIMEOUT_SECONDS", "1800"))
    host = os.environ["KUBERNETES_SERVICE_HOST"]
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    url = f"https://{host}:{port}/apis/apps/v1/namespaces/{namespace}/daemonsets"
    message = "not asked yet"
    while time.monotonic() < deadline:
        token = (ACCOUNT / "token").read_text().strip()  # rotated by the kubelet
        response = requests.get(
            url,
            params={"labelSelector": selector},
            headers={"Authorization": f"Bearer {token}"},
            verify=str(ACCOUNT / "ca.crt"),
            timeout=30,
        )
        response.raise_for_status()
        done, message = pullers_ready(response.json()["items"])
        print(message, flush=True)
        if done:
            return 0
        time.sleep(10)
    print(
        f"The images were not on every node in time ({message}): check the nodes' image "
        "pulls (kubectl describe pod), or raise imagePuller.hook.timeoutSeconds.",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
