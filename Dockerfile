FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

# The locked production set, hashes checked: the embedded servers (the `local` extra, for
# `make run` and the tests) are not in it.
COPY requirements.txt .
RUN pip install --require-hashes -r requirements.txt

COPY . .
# The project itself (gatewayctl, package metadata); its dependencies are the lock's, so
# nothing is resolved again.
RUN pip install --no-deps . \
    && useradd --create-home --uid 10001 gateway \
    && mkdir -p /data/raw && chown -R gateway /data
USER gateway

ENV GATEWAY_HOST=0.0.0.0 GATEWAY_RAW_STORAGE_PATH=/data/raw
EXPOSE 8081 5555
# For the default command (the API); compose gives the worker, beat and Flower their own.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=6 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8081/health', timeout=3)"]
CMD ["python", "-m", "gateway_api"]
