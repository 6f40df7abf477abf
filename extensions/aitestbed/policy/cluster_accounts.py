"""May this cluster account run a portal user's jobs? One pure decision, used at login (hub)
and again at every submission (portal).

A portal user is mapped to a Unix account on the cluster by a template; the portal then
signs Slurm tokens for that account. A user whose name maps to ``root``, ``slurm``,
``munge`` or any other system account would run jobs as it, so such accounts are refused by
name (a deny list) and by UID (below a minimum). Looking the UID up is the caller's job;
``uid=None`` means it could not be resolved, and then only the deny list applies.
"""

from __future__ import annotations

from collections.abc import Collection

from aitestbed.policy.admission import ALLOW, Decision

DEFAULT_MIN_UID = 1000

#: System and service accounts of a Debian/RHEL cluster node, Slurm's and the portal's own;
#: the settings schema's default for ``jobs.user_mapping.denied_accounts`` is this list.
DEFAULT_DENIED_ACCOUNTS = (
    "root",
    "daemon",
    "bin",
    "sys",
    "sync",
    "games",
    "man",
    "lp",
    "mail",
    "news",
    "uucp",
    "proxy",
    "www-data",
    "backup",
    "list",
    "irc",
    "gnats",
    "nobody",
    "slurm",
    "munge",
    "slurmrestd",
    "mysql",
    "postgres",
    "sshd",
    "messagebus",
    "systemd-network",
    "systemd-resolve",
    "systemd-timesync",
    "_apt",
    "jupyterhub",
)


def check_cluster_account(
    account: str, uid: int | None, *, min_uid: int, denied: Collection[str]
) -> Decision:
    """Whether ``account`` (with ``uid`` when known) may run a portal user's jobs."""
    if account in denied:
        return Decision.refuse(
            "denied-account",
            f"The cluster account {account!r} is a system account that portal jobs may not "
            "use; ask the operators to map you to a personal account.",
        )
    if uid is not None and uid < min_uid:
        return Decision.refuse(
            "system-uid",
            f"The cluster account {account!r} has UID {uid}, below the smallest UID portal "
            f"jobs may use ({min_uid}); ask the operators to map you to a personal account.",
        )
    return ALLOW
