# AI Testbed Portal: the commands a developer and CI use. Each does its own set-up.
.PHONY: setup demo test lint format bench bench-spawn bench-storm bench-policy bench-jobs bench-datasets bench-admission bench-scale clean

setup:
	scripts/setup.sh

demo: setup
	.venv/bin/aitestbed-demo

test:
	scripts/test.sh

lint:
	scripts/setup.sh --test
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format:
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

# Benchmarks (minutes each; never part of the tests): see bench/README.md.
bench: bench-spawn bench-storm bench-policy bench-jobs bench-datasets bench-admission bench-scale

bench-spawn:
	scripts/setup.sh --test
	.venv/bin/python bench/spawn_bench.py

bench-storm:
	scripts/setup.sh --test
	.venv/bin/python bench/storm_bench.py

bench-policy:
	scripts/setup.sh --test
	.venv/bin/python bench/policy_bench.py

bench-jobs:
	scripts/setup.sh --test
	.venv/bin/python -m bench.jobs_bench

bench-datasets:
	scripts/setup.sh --test
	.venv/bin/python -m bench.datasets_bench

bench-admission:
	scripts/setup.sh --test
	.venv/bin/python -m bench.admission_bench

# Growth curves (docs/benchmarks.md); ARGS=--full adds 10^6 records.
bench-scale:
	scripts/setup.sh --test
	.venv/bin/python -m bench.scale_bench $(ARGS)

clean:
	rm -rf state test-artifacts bench/results
