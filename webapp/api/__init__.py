"""The native REST API under /api/v1 (JSON only, API keys only)."""
