import httpx


def test_health_is_ok(app_url: str) -> None:
    response = httpx.get(f"{app_url}/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_unknown_route_uses_openai_error_envelope(app_url: str) -> None:
    response = httpx.get(f"{app_url}/v1/nope")
    assert response.status_code == 404
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
