"""Task dispatch: enqueue, leases, retries, dead letters and the fleet registry."""
