"""The app builds on both databases and answers its health check."""


def test_health_check_reports_ok(app):
    client = app.test_client()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_org_fixture_has_default_roles(org):
    assert [r.key for r in org.roles] == ["admin", "member"]
    assert org.default_role == "member"
