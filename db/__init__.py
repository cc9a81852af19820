"""SQLAlchemy 2 models, sessions and queries shared by the API and the Celery workers."""
