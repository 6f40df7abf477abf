"""The job gateway: batch jobs from the portal to a backend (Slurm via slurmrestd, or local
processes), with validation, quota admission, one poller per backend and charging."""
