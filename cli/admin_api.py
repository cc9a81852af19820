"""The CLI's API mode: with ``GATEWAY_API_URL`` (and ``GATEWAY_ADMIN_TOKEN``) set, commands
call the admin API instead of opening the database, so operators need no database
credentials. Both modes give commands the admin API's JSON shapes."""

from __future__ import annotations

from typing import Any

import click
import httpx

from settings import get_settings

REQUEST_TIMEOUT_S = 60.0


class AdminApi:
    def __init__(self, base_url: str, token: str) -> None:
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"X-Admin-Token": token},
            timeout=REQUEST_TIMEOUT_S,
        )

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self._send("GET", path, params=_without_none(params or {}))

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._send("POST", path, json=body or {})

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        return self._send("PATCH", path, json=body)

    def put(self, path: str, body: dict[str, Any]) -> Any:
        return self._send("PUT", path, json=body)

    def delete(self, path: str) -> Any:
        return self._send("DELETE", path)

    def _send(self, method: str, path: str, **options: Any) -> Any:
        try:
            response = self._client.request(method, path, **options)
        except httpx.HTTPError as exc:
            raise click.ClickException(f"admin API unreachable: {exc}") from exc
        if response.is_success:
            return response.json()
        raise click.ClickException(_error_line(response))


def _error_line(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
        return f"{error['message']} ({response.status_code} {error['code']})"
    except (ValueError, KeyError, TypeError):
        return f"admin API answered {response.status_code}: {response.text[:200]}"


def _without_none(params: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in params.items() if value is not None}


def admin_api() -> AdminApi | None:
    """The admin API when ``GATEWAY_API_URL`` is set (API mode); ``None``: direct mode."""
    settings = get_settings()
    if not settings.api_url:
        return None
    if not settings.admin_token:
        raise click.ClickException("GATEWAY_API_URL is set but GATEWAY_ADMIN_TOKEN is not")
    return AdminApi(settings.api_url, settings.admin_token)
