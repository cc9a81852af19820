"""The public ``/v1`` API's domain: API keys, tiers, rate limits, quotas, search, top lists."""
