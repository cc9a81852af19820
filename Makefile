# The single entry point. `make run` starts the local stack; `make test` runs the suite.
# Both create .venv and install the pinned requirements first.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-rabbitmq lint typecheck bench migrate clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m localstack

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

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
