# The README's commands. Each target sets the machine up first (fast when nothing changed).
BIN := .venv/bin
# This checkout's code first: the cached virtualenv is shared by checkouts (and CI clones).
export PYTHONPATH := $(CURDIR)

.PHONY: setup demo test ui bench
setup:
	@bin/setup

# 1. Set up, write the built-in sample lake, and run the whole graph for its latest snapshot.
demo: setup
	bin/flywheel demo-data
	bin/flywheel run --snapshot latest

# 2. Set up (with the PostgreSQL server the deployment tests start) and run the tests.
test:
	@bin/setup --with-postgres
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

# 3. Open the Dagster UI on the same local instance (http://127.0.0.1:3000).
ui: setup
	bin/flywheel ui

# 4. The benchmark suite (under 15 minutes here at default sizes); results in docs/benchmarks.md.
bench: setup
	$(BIN)/python -m benchmarks
