"""Simulated GPUs through the real hub (the demo's ``site.simulated_gpus``): sessions get
different devices and their kernels see them, the spawn page counts free devices and says
what the GPUs are, and the docs' ``%%job --gpus 1`` example gets a device of its own."""

from __future__ import annotations

import pytest

from tests.harness import running_portal, wait_until
from tests.integration.test_embedded_portal import _api_token, _run_in_session, _start_server

pytestmark = pytest.mark.integration

USERS = {"alice": "alice-pw", "bob": "bob-pw"}
# Two whole GPUs and one split into seven 1g.10gb instances.
SIMULATED = {"count": 3, "mig_profile": "1g.10gb", "mig_gpus": 1}
SHOW = (
    "import os; print(os.environ.get('CUDA_VISIBLE_DEVICES'), "
    "os.environ.get('AITESTBED_GPU_SIMULATED'))"
)
ADVISORY = (
    "CUDA_VISIBLE_DEVICES; sessions here all run as one Unix user, so that is advice, not a limit."
)
DOCS_JOB = "--project acme-vision --gpus 1 --time 30 --name quick-train --wait"


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    with running_portal(
        tmp_path_factory.mktemp("gpus"), USERS, simulated_gpus=SIMULATED
    ) as running:
        yield running


def job_cell(script: str) -> str:
    return (
        "get_ipython().run_line_magic('load_ext', 'aitestbed')\n"
        f"get_ipython().run_cell_magic('job', {DOCS_JOB!r}, {script!r})\n"
        "print('LOG:' + _job.logs().strip())"
    )


def test_gpu_sessions_and_jobs_on_simulated_gpus(portal):
    alice = portal.login("alice", USERS["alice"])
    bob = portal.login("bob", USERS["bob"])
    page = alice.get(f"{portal.url}/hub/spawn", timeout=60).text
    assert "The GPUs of this machine are simulated" in page
    assert ADVISORY in page
    assert "2 of 2 free now" in page  # a100x1: the two whole GPUs
    assert "7 of 7 free now" in page  # a100-1g-10gb: the seven slices

    _start_server(portal, alice, "alice", project="acme-vision", flavor="a100x1", image="pytorch")
    _start_server(portal, bob, "bob", project="acme-vision", flavor="a100x1", image="pytorch")
    alice_token, bob_token = _api_token(portal, alice, "alice"), _api_token(portal, bob, "bob")
    try:
        assert _run_in_session(portal, alice_token, "alice", SHOW).strip() == (
            "GPU-simulated-0000 1"
        )
        assert _run_in_session(portal, bob_token, "bob", SHOW).strip() == "GPU-simulated-0001 1"

        # Both whole GPUs are held: the docs' job example is refused with the reason.
        refused = _run_in_session(portal, alice_token, "alice", job_cell("true"))
        assert (
            "Only 0 of this machine's 2 GPUs are free right now and the job asks for 1" in refused
        )
        bob.delete(f"{portal.url}/hub/api/users/bob/server", timeout=60)
        wait_until(
            lambda: "1 of 2 free now" in bob.get(f"{portal.url}/hub/spawn", timeout=60).text,
            timeout=60,
            what="bob's GPU given back",
        )
        out = _run_in_session(
            portal,
            alice_token,
            "alice",
            job_cell('echo "CVD=$CUDA_VISIBLE_DEVICES SIM=$AITESTBED_GPU_SIMULATED"'),
        )
        assert "LOG:CVD=GPU-simulated-0001 SIM=1" in out, out
    finally:
        alice.delete(f"{portal.url}/hub/api/users/alice/server", timeout=60)
        bob.delete(f"{portal.url}/hub/api/users/bob/server", timeout=60)
    # Stopped sessions and the ended job hold nothing any more.
    wait_until(
        lambda: "2 of 2 free now" in bob.get(f"{portal.url}/hub/spawn", timeout=60).text,
        timeout=60,
        what="every GPU given back",
    )
