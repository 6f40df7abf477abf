"""Usage reports: the usage page (every role), GPU-hours per day and its plot."""
