"""Logins are audited: a key's first use by a server process in a UTC day, not every call."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api_support import auth
from safestream.auth import Role
from safestream.store.audit import AuditRepository
from safestream.store.db import Store
from safestream.store.service import KeyRepository


def test_first_use_of_a_key_is_audited_once(
    client: TestClient, store: Store, role_keys: dict[Role, str]
) -> None:
    audit = AuditRepository(store)
    keys = {k.role: k for k in KeyRepository(store).list()}
    for _ in range(3):
        assert client.get("/v1/banks", headers=auth(role_keys[Role.CURATOR])).status_code == 200
    # A refused call still authenticated the key: that is a login too.
    assert client.get("/v1/jobs", headers=auth(role_keys[Role.AUDITOR])).status_code == 403
    logins = audit.list_events(action="api_key.login")
    assert [(e.actor, e.object_id) for e in logins] == [
        (f"key:{keys[Role.CURATOR].id}", str(keys[Role.CURATOR].id)),
        (f"key:{keys[Role.AUDITOR].id}", str(keys[Role.AUDITOR].id)),
    ]
    assert logins[0].detail["role"] == "curator"
    # Unknown and revoked keys log nobody in (and write nothing: no audit flooding).
    KeyRepository(store).revoke(keys[Role.REVIEWER].id, actor="test")
    assert client.get("/v1/banks", headers=auth(role_keys[Role.REVIEWER])).status_code == 401
    assert client.get("/v1/banks", headers=auth("ss_" + "x" * 40)).status_code == 401
    assert len(audit.list_events(action="api_key.login")) == 2
    assert audit.verify().ok
