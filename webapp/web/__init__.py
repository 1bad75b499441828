"""HTML surfaces (the dashboard arrives with its own issue)."""
