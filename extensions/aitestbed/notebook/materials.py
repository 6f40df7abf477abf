"""Pull a course's materials into the student's home, then start the session's server.

The spawner puts this in front of the single-user server's command for a course session::

    python -m aitestbed.notebook.materials <repo> <branch> <folder> -- <server command...>

It runs nbgitpuller itself (``python -m nbgitpuller.pull``), so its merge rules apply: a
first start clones; later starts bring the course's changes and keep the student's own
(a file both changed keeps the student's version; a file the student deleted comes back).
A pull that fails or takes too long does not stop the session: the server starts with
what the home has and the reason is printed to the session's log. Runs as the session
(the student's rights, in the student's home); never through a shell.
"""

from __future__ import annotations

import os
import subprocess
import sys

PULL_TIMEOUT_SECONDS = 120


def pull(repo: str, branch: str, folder: str, timeout: float = PULL_TIMEOUT_SECONDS) -> str:
    """Pull ``repo``'s ``branch`` into ``folder``; '' when it worked, else the reason."""
    if repo.startswith("-") or branch.startswith("-"):
        return "The course's materials repository or branch is not valid; ask the staff."
    os.makedirs(os.path.dirname(os.path.abspath(folder)), exist_ok=True)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "nbgitpuller.pull", repo, branch, folder],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"The course's materials did not arrive within {timeout:g} seconds."
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return f"The course's materials could not be pulled: {last[0][:300]}"
    return ""


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 5 or args[3] != "--":
        sys.exit("usage: python -m aitestbed.notebook.materials REPO BRANCH FOLDER -- COMMAND...")
    repo, branch, folder, command = args[0], args[1], args[2], args[4:]
    problem = pull(repo, branch, folder)
    if problem:
        print(f"{problem} The session starts with the files it has.", file=sys.stderr)
    else:
        print(f"Course materials are up to date in {folder}.", file=sys.stderr)
    sys.stderr.flush()
    os.execvp(command[0], command)  # noqa: S606 - the spawner's server command, an argument list


if __name__ == "__main__":  # pragma: no cover - run by the spawner
    main()
