"""Bank routes: CRUD, entries, import (all or nothing), streamed export."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api_support import auth
from safestream.auth import Role


def pdq(i: int) -> str:
    return f"{i:064x}"


def test_bank_crud(client: TestClient, role_keys: dict[Role, str]) -> None:
    h = auth(role_keys[Role.CURATOR])
    r = client.post(
        "/v1/banks", json={"name": "iwf", "source": "IWF", "pdq_threshold": 20}, headers=h
    )
    assert r.status_code == 201 and r.json()["pdq_threshold"] == 20
    assert client.post("/v1/banks", json={"name": "iwf"}, headers=h).status_code == 409
    assert client.post("/v1/banks", json={"name": "bad name"}, headers=h).status_code == 400
    assert (
        client.post("/v1/banks", json={"name": "x", "pdq_threshold": 500}, headers=h).status_code
        == 422
    )
    assert (
        client.post("/v1/banks", json={"name": "x", "colour": "red"}, headers=h).status_code == 422
    )
    patched = client.patch(
        "/v1/banks/iwf", json={"enabled": False, "is_allow_list": True}, headers=h
    )
    assert patched.json()["enabled"] is False and patched.json()["is_allow_list"] is True
    assert [b["name"] for b in client.get("/v1/banks", headers=h).json()] == ["iwf"]
    assert client.get("/v1/banks/nope", headers=h).status_code == 404
    assert client.delete("/v1/banks/iwf", headers=h).status_code == 204
    assert client.get("/v1/banks/iwf", headers=h).status_code == 404


def test_entries_pagination_and_removal(client: TestClient, role_keys: dict[Role, str]) -> None:
    h = auth(role_keys[Role.CURATOR])
    client.post("/v1/banks", json={"name": "b"}, headers=h)
    entries = [{"signal_type": "pdq", "value": pdq(i), "labels": ["x"]} for i in range(1, 6)]
    added = client.post("/v1/banks/b/entries", json={"entries": entries}, headers=h).json()
    assert len(added["added_ids"]) == 5 and added["duplicates"] == 0
    bad = client.post(
        "/v1/banks/b/entries", json={"entries": [{"signal_type": "md5", "value": "zz"}]}, headers=h
    )
    assert bad.status_code == 400 and bad.json()["detail"].startswith("entries[0]: ")
    page1 = client.get("/v1/banks/b/entries?limit=3", headers=h).json()
    assert len(page1["entries"]) == 3 and page1["next_after_id"] == page1["entries"][-1]["id"]
    page2 = client.get(
        f"/v1/banks/b/entries?limit=3&after_id={page1['next_after_id']}", headers=h
    ).json()
    assert len(page2["entries"]) == 2 and page2["next_after_id"] is None
    removed = client.post(
        "/v1/banks/b/entries/remove",
        json={
            "entry_ids": [added["added_ids"][0]],
            "hashes": [{"signal_type": "pdq", "value": pdq(2)}],
        },
        headers=h,
    )
    assert removed.json() == {"removed": 2}
    assert client.post("/v1/banks/b/entries/remove", json={}, headers=h).status_code == 400


def test_import_and_export(client: TestClient, role_keys: dict[Role, str]) -> None:
    h = auth(role_keys[Role.CURATOR])
    client.post("/v1/banks", json={"name": "b"}, headers=h)
    text = "\n".join(f"pdq {pdq(i)}" for i in range(1, 2501)) + "\nmd5 " + "a" * 32 + "\n"
    r = client.post("/v1/banks/b/import", files={"file": ("list.txt", text.encode())}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["entries_added"] == 2501
    exported = client.get("/v1/banks/b/export?format=te", headers=h)
    assert exported.status_code == 200
    assert exported.text.splitlines() == text.strip().splitlines()
    csv_text = client.get("/v1/banks/b/export?format=csv", headers=h).text
    lines = csv_text.splitlines()
    assert lines[0].startswith("signal_type,value") and len(lines) == 2502
    assert sum(line.startswith("signal_type") for line in lines) == 1
    md5_only = client.get("/v1/banks/b/export?format=md5", headers=h).text
    assert md5_only == "a" * 32 + "\n"


def test_import_bad_line_adds_nothing(client: TestClient, role_keys: dict[Role, str]) -> None:
    h = auth(role_keys[Role.CURATOR])
    client.post("/v1/banks", json={"name": "b"}, headers=h)
    text = f"pdq {pdq(1)}\npdq {pdq(2)}\npdq nothex\n"
    r = client.post(
        "/v1/banks/b/import?format=te", files={"file": ("list.txt", text.encode())}, headers=h
    )
    assert r.status_code == 400
    assert ":3: " in r.json()["detail"] and r.json()["kind"] == "hash_list"
    assert client.get("/v1/banks/b", headers=h).json()["entry_count"] == 0
    skipped = client.post(
        "/v1/banks/b/import?format=te&skip_invalid=true",
        files={"file": ("list.txt", text.encode())},
        headers=h,
    )
    assert skipped.json()["entries_added"] == 2 and len(skipped.json()["errors"]) == 1
    assert (
        client.post(
            "/v1/banks/b/import?format=xml", files={"file": ("l", b"")}, headers=h
        ).status_code
        == 422
    )
    assert (
        client.post("/v1/banks/nope/import", files={"file": ("l", b"")}, headers=h).status_code
        == 404
    )
