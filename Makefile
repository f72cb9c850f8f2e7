# The two commands a fresh machine needs: `make run` and `make test`. Both set everything up first.
.PHONY: setup run test test-unit lint bench clean-state

setup:
	@scripts/setup.sh

run: setup
	@.venv/bin/python -m newsflow_devtools.run_local

test: setup
	@.venv/bin/pytest $(PYTEST_ARGS)

test-unit: setup
	@.venv/bin/pytest -m unit $(PYTEST_ARGS)

# Formatting and lint both fail the build: CI runs this before the tests.
lint: setup
	@.venv/bin/ruff format --check .
	@.venv/bin/ruff check .

# The bench group (matplotlib, psutil, py-spy, feedparser) is only synced here: tests never need it.
bench: setup
	@uv sync --frozen --all-packages --group bench -q
	@.venv/bin/python benchmarks/run_all.py $(BENCH_ARGS)

clean-state:
	@scripts/elasticsearch.sh stop || true
	@scripts/redis.sh stop || true
	rm -rf .state
