"""Cursors are signed by the server and their values bounded: a forged or altered cursor is a
422 naming ``cursor``, never a query."""

from __future__ import annotations

import base64
import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from services.errors import InvalidInput
from services.public.cursors import Cursor, decode_cursor, encode_cursor
from services.public.search import SortKey, parse_cursor_value
from tests.public_factories import ParcelSpec, add_api_key, add_parcels


@pytest.fixture
def key_headers(db_session: Session) -> dict[str, str]:
    return {"X-API-Key": add_api_key(db_session, "enterprise").key}


def first_cursor(client: TestClient, headers: dict[str, str], db_session: Session) -> str:
    add_parcels(db_session, [ParcelSpec(total_due=f"${n}.00") for n in range(1, 4)])
    page = client.get("/v1/search", params={"limit": 1, "sort": "-total_due"}, headers=headers)
    assert page.status_code == 200, page.text
    cursor: str = page.json()["next_cursor"]
    return cursor


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_a_cursor_with_a_forged_huge_sort_value_is_a_422(
    api_client: TestClient, key_headers: dict[str, str], db_session: Session
) -> None:
    genuine = first_cursor(api_client, key_headers, db_session)
    payload_part = genuine.split(".")[0]
    payload = json.loads(unb64(payload_part))
    forged_payload = b64(json.dumps({**payload, "v": "1E+999999"}).encode())
    forgeries = [
        forged_payload,  # unsigned, as the old cursors were
        f"{forged_payload}.{genuine.split('.')[-1]}",  # another cursor's signature
        genuine[:-2] + ("AA" if not genuine.endswith("AA") else "BB"),  # altered signature
    ]
    for forged in forgeries:
        response = api_client.get(
            "/v1/search",
            params={"limit": 1, "sort": "-total_due", "cursor": forged},
            headers=key_headers,
        )
        assert response.status_code == 422, (forged, response.text)
        assert "cursor" in response.json()["error"]["message"]
    again = api_client.get(
        "/v1/search",
        params={"limit": 1, "sort": "-total_due", "cursor": genuine},
        headers=key_headers,
    )
    assert again.status_code == 200 and len(again.json()["items"]) == 1


def test_a_signed_cursor_still_has_its_value_bounded() -> None:
    token = encode_cursor(Cursor(value="1E+999999", last_id=1, fingerprint="f"))
    position = decode_cursor(token, fingerprint="f")
    for key in (SortKey.TOTAL_DUE, SortKey.DUE_TO_VALUE):
        with pytest.raises(InvalidInput, match="cursor"):
            parse_cursor_value(key, position.value or "")
    with pytest.raises(InvalidInput, match="cursor"):
        decode_cursor(encode_cursor(Cursor("1", last_id=2**70, fingerprint="f")), fingerprint="f")
