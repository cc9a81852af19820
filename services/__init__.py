"""Plain, typed domain functions shared by the API, the Celery tasks and the CLI.

Nothing here imports FastAPI or Celery; functions take a Session first and may flush, never commit.
"""
