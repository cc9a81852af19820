"""``gatewayctl``: the operators' command line (enqueue, dead letters, workers, API keys)."""
