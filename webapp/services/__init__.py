"""Domain rules, once: every surface (dashboard, API, compat layers, CLI, importer) calls these."""
