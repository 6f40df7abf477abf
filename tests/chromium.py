"""The system Chromium the browser tests drive (never a downloaded browser build)."""

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
# Headless on a machine with a closed network: no background connections, no sandbox (root).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
