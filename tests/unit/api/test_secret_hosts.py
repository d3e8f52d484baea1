"""A stored secret stays with the host it was given for: a change that points a subscription's
sink or a connector's URL (or an OAuth2 token URL) at another host must give the secrets going
there again; otherwise whoever may change the configuration, but may not read its secrets,
could have them sent to a host of their choosing. On the in-memory apps; sinks and the Signalen
fake are real local servers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hub.adapters.memory import InMemoryConnectorStore, InMemorySubscriptionStore
from schemas.credentials import moved_secrets, origin
from tests.support.connector_app import ADMIN_AUTH, connector_app
from tests.support.connector_app import ConnectorApp as App
from tests.support.hub_api import subscribe
from tests.support.memory_app import MemoryApp
from tests.support.signalen_fake import SignalenFake
from tests.support.sink import WebhookSink

MOVED = "Secrets stay with their host"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://Sink.Example/hook", "https://sink.example:443"),
        ("http://sink.example:80/a?b=1", "http://sink.example:80"),
        ("http://user:pw@127.0.0.1:8080/x", "http://127.0.0.1:8080"),
        ("http://[::1]:8080/x", "http://[::1]:8080"),
        ("/var/lib/koppelhub/a.csv", None),
        ("urn:nld:oin:00000001:systeem", None),
        # Fails closed: what does not parse (an HTTP client may still send to it) is its own origin.
        ("http://127.0.0.1:+8080/token", "http://127.0.0.1:+8080/token"),
        ("http://hub:s3cret@127.0.0.1:+8080/token", "http://127.0.0.1:+8080/token"),  # named without it
        ("http://sink.example:99999", "http://sink.example:99999"),
    ],
)
def test_the_origin_of_a_url_is_its_scheme_host_and_port(url: str, expected: str | None) -> None:
    assert origin(url) == expected


def test_a_secret_may_follow_a_change_of_path_but_not_of_host() -> None:
    before = {"url": "https://api.example/v1", "auth": {"proxy": "http://outway:8080"}}
    assert moved_secrets(["auth.token"], before, {**before, "url": "https://api.example:443/v2"}) is None
    assert moved_secrets([], before, {**before, "url": "https://evil.example/v1"}) is None
    why = moved_secrets(["auth.token"], before, {**before, "url": "https://evil.example/v1"})
    assert why is not None and "https://evil.example:443" in why and "auth.token" in why
    # What passes a proxy is seen by it: another proxy is another host.
    assert moved_secrets(["auth.token"], before, {**before, "auth": {"proxy": "http://elders:8080"}})


def ca_certificate(name: str) -> str:
    """A self-signed CA certificate (PEM), as an operator of a private CA would give one."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    built = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return built.public_bytes(serialization.Encoding.PEM).decode()


def test_a_secret_does_not_follow_a_new_ca_certificate() -> None:
    """Whoever holds a trusted CA's key can answer for the same host name: a new one is a new
    destination, one taken away or written again is not."""
    ours, theirs = ca_certificate("ours"), ca_certificate("theirs")
    before = {"url": "https://api.example/v1", "auth": {"caCertificate": ours}}
    why = moved_secrets(["auth.token"], before, {**before, "auth": {"caCertificate": theirs}})
    assert why is not None and "CA certificate sha256:" in why and "auth.token" in why
    assert "BEGIN CERTIFICATE" not in why
    assert moved_secrets(["auth.token"], {"url": before["url"]}, before)  # a CA where none was
    elsewhere = {"url": "https://evil.example", "auth": {"caCertificate": theirs}}
    both = moved_secrets(["auth.token"], before, elsewhere)
    assert both is not None and "https://evil.example:443 and trusts CA certificate" in both
    rewrapped = {**before, "auth": {"caCertificate": ours.replace("\n", "\r\n")}}
    assert moved_secrets(["auth.token"], before, rewrapped) is None
    assert moved_secrets(["auth.token"], before, {**before, "auth": {}}) is None
    assert moved_secrets([], before, {**before, "auth": {"caCertificate": theirs}}) is None


def test_a_ca_bundle_is_compared_certificate_by_certificate() -> None:
    """Reordered, trimmed, or with text around its blocks, a bundle trusts nothing new; one more
    certificate in it (under any PEM label OpenSSL reads as one) does. A value under that name
    with no certificate in it (a mapping's JMESPath) trusts nothing."""
    first, second, third = (ca_certificate(name) for name in ("first", "second", "third"))
    before = {"url": "https://api.example/v1", "auth": {"caCertificate": first + second}}

    def after(bundle: str) -> dict[str, object]:
        return {**before, "auth": {"caCertificate": bundle}}

    for same in (second + first, first, f"# our CAs\n{second}\n{first}"):
        assert moved_secrets(["auth.token"], before, after(same)) is None
    assert moved_secrets(["auth.token"], before, after(first + second + third))
    old_label = third.replace("BEGIN CERTIFICATE", "BEGIN X509 CERTIFICATE").replace(
        "END CERTIFICATE", "END X509 CERTIFICATE"
    )
    assert moved_secrets(["auth.token"], before, after(first + old_label))
    fields = {**before, "mapping": {"fields": {"caCertificate": "certificaat.ca"}}}
    assert (
        moved_secrets(["auth.token"], fields, {**fields, "mapping": {"fields": {"caCertificate": "x"}}})
        is None
    )


@pytest.fixture
async def other_sink() -> AsyncIterator[WebhookSink]:
    receiver = await WebhookSink().start()
    yield receiver
    await receiver.stop()


async def test_a_sink_moved_to_another_host_needs_its_credential_headers_again(
    memory: MemoryApp, auth: dict[str, str], sink: WebhookSink, other_sink: WebhookSink
) -> None:
    client = memory.client
    headers = {"Authorization": "Bearer sink-s3cret", "X-Tenant": "a"}
    sub = await subscribe(client, auth, sink.url, protocolsettings={"headers": headers})
    path = f"/api/v1/subscriptions/{sub['id']}"
    store = InMemorySubscriptionStore(memory.database)

    for change in (
        {"sink": other_sink.url},
        {"sink": other_sink.url, "protocolsettings": {"headers": sub["protocolsettings"]["headers"]}},
    ):
        refused = await client.patch(path, json=change, headers=auth)
        assert refused.status_code == 400, refused.text
        assert refused.json()["title"] == MOVED
        assert "protocolsettings.headers.authorization" in refused.json()["detail"]
        assert "s3cret" not in refused.text
        assert (await store.get(uuid.UUID(sub["id"]))).sink == sink.url

    same_host = await client.patch(path, json={"sink": sink.url + "/elders"}, headers=auth)
    assert same_host.status_code == 200, same_host.text

    given = {"Authorization": "Bearer other-s3cret", "X-Tenant": "a"}
    moved = await client.patch(
        path, json={"sink": other_sink.url, "protocolsettings": {"headers": given}}, headers=auth
    )
    assert moved.status_code == 200, moved.text
    tested = await client.post(f"{path}/test", headers=auth)
    assert tested.json()["delivered"] is True, tested.text
    assert {k.lower(): v for k, v in other_sink.received[-1].headers.items()}["authorization"] == (
        "Bearer other-s3cret"
    )
    dropped = await client.patch(
        path, json={"sink": sink.url, "protocolsettings": {"headers": {"X-Tenant": "a"}}}, headers=auth
    )
    assert dropped.status_code == 200, dropped.text


async def test_an_oauth2_client_secret_stays_with_its_token_url(
    memory: MemoryApp, auth: dict[str, str], sink: WebhookSink, other_sink: WebhookSink
) -> None:
    client = memory.client
    oauth2 = {"tokenUrl": sink.url + "/token", "clientId": "hub", "clientSecret": "c-s3cret"}
    created = await client.post(
        "/api/v1/subscriptions",
        json={"sink": sink.url, "validate": False, "auth": {"oauth2": oauth2}},
        headers=auth,
    )
    path = f"/api/v1/subscriptions/{created.json()['id']}"
    shown = created.json()["auth"]["oauth2"]

    elsewhere = {**shown, "tokenUrl": other_sink.url + "/token"}
    refused = await client.patch(path, json={"auth": {"oauth2": elsewhere}}, headers=auth)
    assert refused.status_code == 400, refused.text
    assert refused.json()["title"] == MOVED and "auth.oauth2.clientSecret" in refused.json()["detail"]

    # Nor may the sink move with it kept: the access tokens it mints would follow.
    moved_sink = await client.patch(path, json={"sink": other_sink.url, "validate": False}, headers=auth)
    assert moved_sink.status_code == 400, moved_sink.text
    given = await client.patch(
        path, json={"auth": {"oauth2": {**elsewhere, "clientSecret": "n1euw"}}}, headers=auth
    )
    assert given.status_code == 200, given.text
    stored = await InMemorySubscriptionStore(memory.database).get(uuid.UUID(created.json()["id"]))
    assert stored.auth["oauth2"]["client_secret"] == "n1euw"


async def test_a_subscriptions_secrets_do_not_follow_a_new_proxy(
    memory: MemoryApp, auth: dict[str, str], sink: WebhookSink, other_sink: WebhookSink
) -> None:
    headers = {"Authorization": "Bearer sink-s3cret"}
    sub = await subscribe(memory.client, auth, sink.url, protocolsettings={"headers": headers})
    path = f"/api/v1/subscriptions/{sub['id']}"
    refused = await memory.client.patch(path, json={"auth": {"proxy": other_sink.url}}, headers=auth)
    assert refused.status_code == 400, refused.text
    assert "protocolsettings.headers.authorization" in refused.json()["detail"]


async def test_a_subscriptions_secrets_do_not_follow_a_new_ca_certificate(
    memory: MemoryApp, auth: dict[str, str], sink: WebhookSink
) -> None:
    headers = {"Authorization": "Bearer sink-s3cret"}
    ours = ca_certificate("ours")
    body = {"sink": sink.url, "protocolsettings": {"headers": headers}, "auth": {"caCertificate": ours}}
    created = await memory.client.post("/api/v1/subscriptions", json=body, headers=auth)
    assert created.status_code == 201, created.text
    sub = created.json()
    path = f"/api/v1/subscriptions/{sub['id']}"
    store = InMemorySubscriptionStore(memory.database)

    theirs = {"caCertificate": ca_certificate("theirs")}
    refused = await memory.client.patch(path, json={"auth": theirs}, headers=auth)
    assert refused.status_code == 400, refused.text
    assert refused.json()["title"] == MOVED
    assert "protocolsettings.headers.authorization" in refused.json()["detail"]
    assert (await store.get(uuid.UUID(sub["id"]))).auth["ca_certificate"] == ours

    same = await memory.client.patch(path, json={"auth": sub["auth"]}, headers=auth)
    assert same.status_code == 200, same.text
    given = {"protocolsettings": {"headers": {"Authorization": "Bearer n1euw"}}, "auth": theirs}
    accepted = await memory.client.patch(path, json=given, headers=auth)
    assert accepted.status_code == 200, accepted.text
    assert (await store.get(uuid.UUID(sub["id"]))).auth["ca_certificate"] == theirs["caCertificate"]


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    async with connector_app(tmp_path) as made:
        yield made


async def test_a_connector_pointed_at_another_host_needs_its_secrets_again(
    app: App, signalen: SignalenFake
) -> None:
    body = {"kind": "signalen", "organisatie": "org-voorbeeldstad", "scheduleSeconds": 3600, "enabled": False,
            "config": {"url": signalen.url, "auth": {"token": "sig-s3cret"}}}  # fmt: skip
    created = await app.http.post("/api/v1/connectors", json=body, headers=ADMIN_AUTH)
    assert created.status_code == 201, created.text
    path = f"/api/v1/connectors/{created.json()['id']}"
    store = InMemoryConnectorStore(app.tables)
    elsewhere = "http://localhost:9/signals"

    for config in ({"url": elsewhere}, {"url": elsewhere, "auth": {"token": "********"}}):
        refused = await app.http.patch(path, json={"config": config}, headers=ADMIN_AUTH)
        assert refused.status_code == 400, refused.text
        assert refused.json()["title"] == MOVED and "auth.token" in refused.json()["detail"]
        assert (await store.get(uuid.UUID(created.json()["id"]))).config["url"] == signalen.url

    given = await app.http.patch(
        path, json={"config": {"url": elsewhere, "auth": {"token": "new-s3cret"}}}, headers=ADMIN_AUTH
    )
    assert given.status_code == 200, given.text
    stored = (await store.get(uuid.UUID(created.json()["id"]))).config
    assert (stored["url"], stored["auth"]["token"]) == (elsewhere, "new-s3cret")


async def test_a_connectors_oauth2_client_secret_stays_with_its_token_url(
    app: App, signalen: SignalenFake
) -> None:
    oauth2 = {"tokenUrl": signalen.url + "/token", "clientId": "hub", "clientSecret": "c-s3cret"}
    body = {"kind": "signalen", "organisatie": "org-voorbeeldstad", "scheduleSeconds": 3600, "enabled": False,
            "config": {"url": signalen.url, "auth": {"oauth2": oauth2}}}  # fmt: skip
    created = await app.http.post("/api/v1/connectors", json=body, headers=ADMIN_AUTH)
    assert created.status_code == 201, created.text
    path = f"/api/v1/connectors/{created.json()['id']}"
    shown = created.json()["config"]["auth"]["oauth2"]

    refused = await app.http.patch(
        path,
        json={"config": {"auth": {"oauth2": {**shown, "tokenUrl": "http://localhost:9/token"}}}},
        headers=ADMIN_AUTH,
    )
    assert refused.status_code == 400, refused.text
    assert "auth.oauth2.clientSecret" in refused.json()["detail"]
    # Nor may the API move with it kept: the access tokens it mints would follow.
    moved_api = await app.http.patch(
        path, json={"config": {"url": "http://localhost:9/signals"}}, headers=ADMIN_AUTH
    )
    assert moved_api.status_code == 400, moved_api.text


async def test_a_connectors_secret_does_not_follow_a_new_proxy(app: App, signalen: SignalenFake) -> None:
    body = {"kind": "signalen", "organisatie": "org-voorbeeldstad", "scheduleSeconds": 3600, "enabled": False,
            "config": {"url": signalen.url, "auth": {"token": "sig-s3cret"}}}  # fmt: skip
    created = await app.http.post("/api/v1/connectors", json=body, headers=ADMIN_AUTH)
    change = {"auth": {"token": "********", "proxy": "http://localhost:9"}}  # a proxy sees the token
    refused = await app.http.patch(
        f"/api/v1/connectors/{created.json()['id']}", json={"config": change}, headers=ADMIN_AUTH
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["title"] == MOVED and "auth.token" in refused.json()["detail"]


async def test_a_url_that_does_not_parse_counts_as_another_host(app: App, signalen: SignalenFake) -> None:
    """``urlsplit`` refuses a port written ``+9``; an HTTP client may still send to it."""
    body = {"kind": "publiccode", "organisatie": "org-voorbeeldstad", "scheduleSeconds": 3600,
            "enabled": False,
            "config": {"urls": [signalen.url + "/publiccode.yml"],
                       "auth": {"token": "pc-s3cret"}}}  # fmt: skip
    created = await app.http.post("/api/v1/connectors", json=body, headers=ADMIN_AUTH)
    assert created.status_code == 201, created.text
    odd = {"urls": ["http://127.0.0.1:+9/publiccode.yml"]}
    path = f"/api/v1/connectors/{created.json()['id']}"
    refused = await app.http.patch(path, json={"config": odd}, headers=ADMIN_AUTH)
    assert refused.status_code == 400, refused.text
    assert refused.json()["title"] == MOVED, refused.text


@pytest.mark.parametrize(
    "token_url",
    ["http://hub:s3cret@127.0.0.1:9/token", "http://x[@127.0.0.1:9/token", "http://127.0.0.1:+9/token"],
    ids=["credentials", "unparsable", "odd-port"],
)
async def test_a_token_url_with_credentials_or_that_does_not_parse_is_a_400(app: App, token_url: str) -> None:
    """Credentials in it beside the client's made every request fail inside the HTTP client (a 500)."""
    oauth2 = {"tokenUrl": token_url, "clientId": "hub", "clientSecret": "c-s3cret"}
    body = {"kind": "signalen", "organisatie": "org-voorbeeldstad", "scheduleSeconds": 3600, "enabled": False,
            "config": {"url": "http://127.0.0.1:9", "auth": {"oauth2": oauth2}}}  # fmt: skip
    refused = await app.http.post("/api/v1/connectors", json=body, headers=ADMIN_AUTH)
    assert refused.status_code == 400, refused.text
    assert refused.json()["errors"][0]["field"] == "config.auth.oauth2.tokenUrl"
    assert "s3cret" not in refused.text


async def test_a_connectors_header_sent_back_masked_in_another_case_is_still_kept(app: App) -> None:
    source = {"url": "http://127.0.0.1:9/zaken", "mapping": {"type": "nl.zaken.zaak.v1", "fields": {}}}
    body = {"kind": "rest", "organisatie": "org-voorbeeldstad", "scheduleSeconds": 3600, "enabled": False,
            "config": {**source, "headers": {"Authorization": "Bearer hdr-s3cret"}}}  # fmt: skip
    created = await app.http.post("/api/v1/connectors", json=body, headers=ADMIN_AUTH)
    assert created.status_code == 201, created.text
    change = {"url": "http://localhost:9/zaken", "headers": {"authorization": "********"}}
    refused = await app.http.patch(
        f"/api/v1/connectors/{created.json()['id']}", json={"config": change}, headers=ADMIN_AUTH
    )
    assert refused.status_code == 400, refused.text
    assert "headers.authorization" in refused.json()["detail"]


async def test_a_connectors_secret_does_not_follow_a_new_ca_certificate(
    app: App, signalen: SignalenFake
) -> None:
    ours = ca_certificate("ours")
    config = {"url": signalen.url, "auth": {"token": "sig-s3cret", "caCertificate": ours}}
    body = {"kind": "signalen", "organisatie": "org-voorbeeldstad", "scheduleSeconds": 3600, "enabled": False,
            "config": config}  # fmt: skip
    created = await app.http.post("/api/v1/connectors", json=body, headers=ADMIN_AUTH)
    assert created.status_code == 201, created.text
    path = f"/api/v1/connectors/{created.json()['id']}"
    theirs = ca_certificate("theirs")
    refused = await app.http.patch(
        path, json={"config": {"auth": {"token": "********", "caCertificate": theirs}}}, headers=ADMIN_AUTH
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["title"] == MOVED and "auth.token" in refused.json()["detail"]
    stored = (await InMemoryConnectorStore(app.tables).get(uuid.UUID(created.json()["id"]))).config
    assert stored["auth"]["caCertificate"] == ours

    given = await app.http.patch(
        path, json={"config": {"auth": {"token": "n1euw", "caCertificate": theirs}}}, headers=ADMIN_AUTH
    )
    assert given.status_code == 200, given.text
