"""Run the whole gateway on one machine without Docker: embedded PostgreSQL and Redis."""
