"""Run the whole gateway on one machine without Docker: embedded PostgreSQL and Redis."""

import warnings

# pgserver's platformdirs warns when XDG_RUNTIME_DIR is unset (always, under root); harmless.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
