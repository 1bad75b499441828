"""Bulk invitations from CSV: parse, preview, import (dashboard, CLI and API share these).

    parsed = parse_csv(data, ImportLimits.from_config(app.config))   # or CsvFileError
    plan = plan_import(session, org, parsed, ImportDefaults(role="member"))
    preview = preview_import(session, org, plan)       # verdict per row, totals, quota
    result = run_import(session, org, plan, actor=actor, source="api")   # commits per batch
    report = error_report(plan)                        # CSV bytes of the rows to fix

``jobs`` runs the same steps as a background job (the delivery worker's rounds).
"""
