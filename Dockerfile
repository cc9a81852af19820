FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
RUN useradd --create-home --uid 10001 gateway \
    && mkdir -p /data/raw && chown -R gateway /data
USER gateway

ENV GATEWAY_HOST=0.0.0.0 GATEWAY_RAW_STORAGE_PATH=/data/raw
EXPOSE 8081 5555
CMD ["python", "-m", "gateway_api"]
