# The single entry point. `make run` starts the local stack; `make test` runs the suite.
# Both create .venv and install the locked set (requirements-dev.txt) first.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-rabbitmq lint typecheck bench migrate lock clean

# The lock holds the build backend too, so the editable install of the project itself (which
# gives .venv/bin/gatewayctl and the package metadata) needs nothing outside the lock.
$(STAMP): requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation --editable .
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m gateway_localstack $(RUN_FLAGS)

test: $(STAMP)
	$(PY) -m pytest

# The broker-dependent tests again, with RabbitMQ as the Celery broker.
test-rabbitmq: $(STAMP)
	GATEWAY_TEST_BROKER_URL=$${GATEWAY_TEST_BROKER_URL:-amqp://guest:guest@127.0.0.1:5672//} \
		$(PY) -m pytest -m broker

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy .

bench: $(STAMP)
	$(PY) -m bench

migrate: $(STAMP)
	$(VENV)/bin/alembic upgrade head

# After a change to the dependencies in pyproject.toml: re-resolve both lock files (existing pins
# are kept where they still fit; the development set is constrained to the production one).
PIP_COMPILE := $(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links

lock: $(STAMP)
	$(PIP_COMPILE) --output-file=requirements.txt pyproject.toml
	$(PIP_COMPILE) --all-build-deps --extra=local --extra=dev --constraint=requirements.txt \
		--output-file=requirements-dev.txt pyproject.toml

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info build
