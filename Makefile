# Two entry points, each creating its own virtual environment on a fresh machine:
#   make demo   - train, register and score end to end on Online Retail, shipped in the package (clv demo)
#   make test   - run the whole test suite (what CI runs)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,spark]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/clv demo

# pytest exits 5 when it collected no test: treat that as a failure, not as green.
# Two workers (the machines have two cores); tests/conftest.py keeps each file, and every test of
# the shared scoring shop, on one worker so their fixtures are built once. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
test: $(BIN)/.installed
	PYTHONDONTWRITEBYTECODE=1 $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup --durations=25; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_rfm.py
	$(BIN)/python benchmarks/bench_ltv.py
	$(BIN)/python benchmarks/bench_score.py

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
