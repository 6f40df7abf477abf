"""The airlock: reviewed exports of results from safe-mode sessions (docs/datasets.md)."""
