"""API keys: shown once, stored as sha256, looked up by hash; rotation and revocation."""

from __future__ import annotations

import hashlib

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from cli.main import main as gatewayctl
from db.models import ApiKey
from services.errors import InvalidInput, Unauthorized
from services.public.api_keys import (
    authenticate_api_key,
    create_api_key,
    hash_api_key,
    revoke_api_key,
    rotate_api_key,
)
from services.public.tiers import get_tier
from tests.public_factories import add_api_key


def test_a_key_is_stored_only_as_its_sha256_with_a_short_public_prefix(
    db_session: Session,
) -> None:
    issued = create_api_key(db_session, tier="free", owner="Acme Liens")
    db_session.commit()
    row = db_session.execute(text("SELECT * FROM api_keys")).mappings().one()
    assert issued.key.startswith(row["prefix"] + "_")
    assert row["key_hash"] == hashlib.sha256(issued.key.encode()).hexdigest()
    secret = issued.key.removeprefix(row["prefix"] + "_")
    assert len(secret) >= 43  # 256 bits, url-safe base64
    assert all(secret not in str(value) for value in row.values())
    assert row["tier"] == "free" and row["owner"] == "Acme Liens"


def test_keys_are_unique_and_unguessable(db_session: Session) -> None:
    keys = {create_api_key(db_session, tier="free", owner="o").key for _ in range(20)}
    assert len(keys) == 20


def test_authentication_finds_the_key_by_hash_and_refuses_others(db_session: Session) -> None:
    issued = add_api_key(db_session, "starter")
    assert authenticate_api_key(db_session, issued.key).id == issued.record.id
    for wrong in (issued.key + "x", issued.key[:-1], "tlg_nothing_here", "plain", ""):
        with pytest.raises(Unauthorized):
            authenticate_api_key(db_session, wrong)


def test_a_revoked_key_is_refused_and_revocation_is_idempotent(db_session: Session) -> None:
    issued = add_api_key(db_session, "premium")
    first = revoke_api_key(db_session, issued.record.id).revoked_at
    assert revoke_api_key(db_session, issued.record.id).revoked_at == first
    with pytest.raises(Unauthorized, match="revoked"):
        authenticate_api_key(db_session, issued.key)


def test_rotation_keeps_the_record_and_retires_the_old_key(db_session: Session) -> None:
    old = add_api_key(db_session, "starter")
    new = rotate_api_key(db_session, old.record.id)
    assert new.record.id == old.record.id and new.record.tier == "starter"
    assert new.key != old.key and new.record.rotated_at is not None
    assert authenticate_api_key(db_session, new.key).id == old.record.id
    with pytest.raises(Unauthorized):
        authenticate_api_key(db_session, old.key)
    revoke_api_key(db_session, old.record.id)
    with pytest.raises(InvalidInput):
        rotate_api_key(db_session, old.record.id)


def test_anonymous_and_unknown_tiers_cannot_be_given_to_a_key(db_session: Session) -> None:
    for tier in ("anonymous", "platinum"):
        with pytest.raises(InvalidInput, match="tier"):
            create_api_key(db_session, tier=tier, owner="o")


def test_requests_with_unknown_or_revoked_keys_are_401(
    api_client: TestClient, db_session: Session
) -> None:
    issued = add_api_key(db_session, "free")
    assert api_client.get("/v1/usage", headers={"X-API-Key": issued.key}).status_code == 200
    unknown = api_client.get("/v1/usage", headers={"X-API-Key": "tlg_abc_def"})
    assert unknown.status_code == 401
    assert unknown.json()["error"]["code"] == "UNAUTHORIZED"
    # A bad key costs the caller's address an anonymous token, so guessing is rate limited.
    assert unknown.headers["X-RateLimit-Limit"] == str(get_tier("anonymous").per_minute)

    revoke_api_key(db_session, issued.record.id)
    db_session.commit()
    revoked = api_client.get("/v1/usage", headers={"X-API-Key": issued.key})
    assert revoked.status_code == 401
    assert issued.record.prefix in revoked.json()["error"]["message"]


def test_key_guessing_runs_into_the_anonymous_rate_limit(api_client: TestClient) -> None:
    statuses = [
        api_client.get("/v1/usage", headers={"X-API-Key": f"tlg_guess_{n}"}).status_code
        for n in range(get_tier("anonymous").burst + 1)
    ]
    assert statuses[-1] == 429 and set(statuses[:-1]) == {401}


def test_admin_api_manages_keys_and_shows_each_key_once(
    api_client: TestClient, admin_headers: dict[str, str]
) -> None:
    created = api_client.post(
        "/admin/api-keys", json={"tier": "starter", "owner": "Bank"}, headers=admin_headers
    )
    assert created.status_code == 201, created.text
    body = created.json()
    key_id, key = body["id"], body["key"]
    assert api_client.get("/v1/usage", headers={"X-API-Key": key}).json()["tier"] == "starter"

    listed = api_client.get("/admin/api-keys", headers=admin_headers).json()["keys"]
    assert [k["id"] for k in listed] == [key_id]
    assert "key" not in listed[0] and listed[0]["prefix"] == body["prefix"]

    changed = api_client.patch(
        f"/admin/api-keys/{key_id}", json={"tier": "premium"}, headers=admin_headers
    )
    assert changed.json()["tier"] == "premium"
    rotated = api_client.post(f"/admin/api-keys/{key_id}/rotate", headers=admin_headers).json()
    assert api_client.get("/v1/usage", headers={"X-API-Key": key}).status_code == 401
    new_key = rotated["key"]
    assert api_client.get("/v1/usage", headers={"X-API-Key": new_key}).json()["tier"] == "premium"

    revoked = api_client.post(f"/admin/api-keys/{key_id}/revoke", headers=admin_headers)
    assert revoked.json()["revoked_at"] is not None
    assert api_client.get("/v1/usage", headers={"X-API-Key": new_key}).status_code == 401
    assert api_client.get("/admin/api-keys", headers=admin_headers).json()["keys"] == []
    everything = api_client.get("/admin/api-keys?include_revoked=true", headers=admin_headers)
    assert len(everything.json()["keys"]) == 1


def test_admin_api_needs_the_admin_token_and_valid_input(
    api_client: TestClient, admin_headers: dict[str, str]
) -> None:
    assert api_client.get("/admin/api-keys").status_code == 401
    bad_tier = api_client.post(
        "/admin/api-keys", json={"tier": "gold", "owner": "x"}, headers=admin_headers
    )
    assert bad_tier.status_code == 422 and "gold" in bad_tier.json()["error"]["message"]
    missing = api_client.post("/admin/api-keys/999/revoke", headers=admin_headers)
    assert missing.status_code == 404


def test_cli_creates_lists_rotates_and_revokes_keys(db_session: Session) -> None:
    runner = CliRunner()
    created = runner.invoke(gatewayctl, ["api-keys", "create", "--tier", "free", "--owner", "Ops"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    record = db_session.scalars(select(ApiKey)).one()
    assert record.key_hash == hash_api_key(key) and record.owner == "Ops"

    listed = runner.invoke(gatewayctl, ["api-keys", "list"])
    assert record.prefix in listed.output and key not in listed.output

    rotated = runner.invoke(gatewayctl, ["api-keys", "rotate", str(record.id)])
    assert rotated.exit_code == 0
    new_key = rotated.stdout.strip().splitlines()[-1]
    assert new_key != key
    db_session.expire_all()
    assert db_session.get(ApiKey, record.id).key_hash == hash_api_key(new_key)  # type: ignore[union-attr]

    assert (
        runner.invoke(gatewayctl, ["api-keys", "set-tier", str(record.id), "premium"]).exit_code
        == 0
    )
    revoked = runner.invoke(gatewayctl, ["api-keys", "revoke", str(record.id)])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    assert runner.invoke(gatewayctl, ["api-keys", "list"]).output == ""
    assert "premium" in runner.invoke(gatewayctl, ["api-keys", "list", "--all"]).output

    refused = runner.invoke(gatewayctl, ["api-keys", "create", "--tier", "gold", "--owner", "x"])
    assert refused.exit_code != 0 and "--tier" in refused.output
    missing = runner.invoke(gatewayctl, ["api-keys", "revoke", "999"])
    assert missing.exit_code == 1 and "999" in missing.output
