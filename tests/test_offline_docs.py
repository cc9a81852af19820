"""``/docs`` and ``/redoc`` work without a network: every script, style and icon they load is
served by the app itself, from package files."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

_REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*['"]([^'"]+)['"]""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_page_references_only_assets_served_here(
    api_client: TestClient, page: str
) -> None:
    response = api_client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert not re.search(r"https?://", html), "the page names a remote address"
    references = {first or second for first, second in _REFERENCE.findall(html)}
    assert any(ref.endswith(".js") for ref in references), references
    for reference in references | {"/openapi.json"}:
        assert reference.startswith("/"), reference
        asset = api_client.get(reference)
        assert asset.status_code == 200, reference
        assert asset.content, reference


def test_the_openapi_offers_the_three_credentials_to_the_authorize_button(
    api_client: TestClient,
) -> None:
    spec = api_client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert {name: scheme.get("name") for name, scheme in schemes.items()} == {
        "WorkerToken": "X-Worker-Token",
        "AdminToken": "X-Admin-Token",
        "ApiKey": "X-API-Key",
        "ApiKeyBearer": None,  # Authorization: Bearer <key>
    }
    work = spec["paths"]["/internal/work"]["get"]
    assert work["security"] == [{"WorkerToken": []}]
    assert spec["paths"]["/admin/tasks"]["post"]["security"] == [{"AdminToken": []}]
    assert {"ApiKey": []} in spec["paths"]["/v1/search"]["get"]["security"]
