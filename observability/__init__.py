"""Structured logging and the request id carried from HTTP requests into Celery tasks."""
