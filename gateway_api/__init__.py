"""The thin FastAPI layer: validation, auth and HTTP shapes around the service functions."""
