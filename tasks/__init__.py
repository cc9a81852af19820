"""Celery app and tasks. Tasks are thin: open a session scope and call one plain function."""
