"""Helpers shared by the API tests."""


def auth(key: str) -> dict[str, str]:
    """Headers carrying an API key."""
    return {"Authorization": f"Bearer {key}"}
