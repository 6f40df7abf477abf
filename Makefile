# AI Testbed Portal: the commands a developer and CI use. Each does its own set-up.
.PHONY: setup demo test lint format bench clean

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

bench:
	scripts/setup.sh --test
	.venv/bin/python bench/spawn_bench.py
	.venv/bin/python -m bench.jobs_bench

clean:
	rm -rf state test-artifacts bench/results
