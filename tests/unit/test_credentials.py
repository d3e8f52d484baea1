"""What counts as a credential where the hub shows configuration (schemas.credentials)."""

from __future__ import annotations

import pytest

from schemas.credentials import is_credential_header, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "http://koppelhub:s3cret@outway.example:8443/x?y=1",
            "http://koppelhub:***@outway.example:8443/x?y=1",
        ),
        ("http://koppelhub:s3cret@[::1]:3128", "http://koppelhub:***@[::1]:3128"),
        ("http://:s3cret@outway.example", "http://:***@outway.example"),
        ("http://koppelhub@outway.example", "http://koppelhub@outway.example"),  # no password
        ("https://sink.example/hook", "https://sink.example/hook"),
        ("connector:3f2b", "connector:3f2b"),
    ],
)
def test_a_urls_password_is_masked_and_nothing_else_changes(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_a_url_with_a_port_that_is_not_one_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        redact_url("http://u:p@outway.example:99999")


@pytest.mark.parametrize(
    ("name", "credential"),
    [("Authorization", True), ("proxy-authorization", True), ("Cookie", True), ("X-Api-Key", True),
     ("X_API_KEY", True), ("X-Auth-Token", True), ("X-Client-Secret", True), ("X-Tenant", False),
     ("Ocp-Apim-Subscription-Key", True), ("X-Functions-Key", True), ("X-Auth-Key", True),
     ("X-Client-Credential", True), ("X-Session-Id", True), ("X-Password", True),
     ("X-Bron", False), ("Accept-Language", False)],
)  # fmt: skip
def test_which_headers_carry_a_credential(name: str, credential: bool) -> None:
    assert is_credential_header(name) is credential


def test_passwords_in_a_list_of_urls_are_masked_and_kept_when_sent_back_as_shown() -> None:
    from connectors.kinds import KINDS  # noqa: F401 - registers every connector kind
    from connectors.registry import merge_config, public_config

    stored = {"urls": ["https://bot:glpat-s3cret@gitlab.example/a/publiccode.yml", "https://example.org/b"]}
    shown = public_config("publiccode", stored)
    assert "s3cret" not in str(shown)
    assert shown["urls"][0] == "https://bot:***@gitlab.example/a/publiccode.yml"

    added = merge_config("publiccode", stored, {"urls": [*shown["urls"], "https://example.org/c"]})
    assert added["urls"] == [*stored["urls"], "https://example.org/c"]
    changed = merge_config(
        "publiccode", stored, {"urls": ["https://bot:n1euw@gitlab.example/a/publiccode.yml"]}
    )
    assert changed["urls"] == ["https://bot:n1euw@gitlab.example/a/publiccode.yml"]
