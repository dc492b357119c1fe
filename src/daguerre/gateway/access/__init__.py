"""Who may do what, how much and how soon: rate limits, rollout gates, admission,
operators' live controls, the API key cache and per-account stream slots."""
