"""Bulk invitations from CSV: parse, preview, import (dashboard, CLI and API share these).

Synchronously (the CLI; an API request with a small body)::

    parsed = parse_csv(data, ImportLimits.from_config(app.config))   # or CsvFileError
    plan = plan_import(session, org, parsed, ImportDefaults(role="member"))  # verdicts
    preview = preview_import(session, org, plan)       # totals by verdict, quota check
    result = run_import(session, org, plan, actor=actor, source="import")  # commits per batch
    report = error_report(plan)                        # CSV bytes of the rows to fix

As a background job (the dashboard; an API that answers 202)::

    job = create_job(session, org, data, filename=..., defaults=..., actor=..., source="api")
    # the delivery worker checks it (run_import_round) → job.status "ready"
    preview_page(session, job, verdict=None, page=1)   # the stored verdict table
    confirm_job(session, org, job)                     # QuotaExceeded when it cannot fit
    # the worker imports it in batches → "done"; job.result_counts, job_report(session, job)

Everything below commits only where it says so (batches, job steps); the rest runs in
the caller's transaction.
"""
