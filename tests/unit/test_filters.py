"""CloudEvents Subscriptions API filter dialects and subscription matching."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from subscriptions.filters import dump_filters, matches_all, parse_filters
from subscriptions.model import SubscriptionCreate, subscription_matches

EVENT = {
    "specversion": "1.0",
    "id": "evt-1",
    "source": "urn:nld:oin:00000001234567890000:systeem:softwarecatalogus",
    "type": "nl.softwarecatalogus.gebruik.gewijzigd.v1",
    "subject": "gebruik-0001",
    "partitionkey": "org-42",
}


def holds(raw_filter: dict[str, Any], attrs: dict[str, str] = EVENT) -> bool:
    return matches_all(parse_filters([raw_filter]), attrs)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"exact": {"type": "nl.softwarecatalogus.gebruik.gewijzigd.v1"}}, True),
        ({"exact": {"type": "nl.softwarecatalogus.gebruik.gewijzigd"}}, False),
        ({"exact": {"type": EVENT["type"], "subject": "gebruik-0001"}}, True),
        ({"exact": {"type": EVENT["type"], "subject": "gebruik-0002"}}, False),
        ({"prefix": {"type": "nl.softwarecatalogus."}}, True),
        ({"prefix": {"type": "nl.gemeente."}}, False),
        ({"prefix": {"type": "nl.", "source": "urn:nld:oin:"}}, True),
        ({"prefix": {"type": "nl.", "source": "urn:nld:kvknr:"}}, False),
        ({"suffix": {"type": ".gewijzigd.v1"}}, True),
        ({"suffix": {"type": ".verwijderd.v1"}}, False),
        ({"suffix": {"subject": "-0001", "type": ".v1"}}, True),
        ({"exact": {"partitionkey": "org-42"}}, True),  # extension attributes too
    ],
)
def test_attribute_dialects_require_every_pair_to_hold(raw: dict[str, Any], expected: bool) -> None:
    assert holds(raw) is expected


def test_attribute_names_compare_case_insensitively() -> None:
    assert holds({"exact": {"TYPE": EVENT["type"]}})
    assert holds({"prefix": {"Subject": "gebruik-"}})
    assert holds({"exact": {"type": EVENT["type"]}}, {"Type": EVENT["type"]})


def test_values_compare_case_sensitively() -> None:
    assert not holds({"exact": {"type": EVENT["type"].upper()}})
    assert not holds({"prefix": {"type": "NL."}})
    assert not holds({"suffix": {"subject": "-0001".upper() + "X"}})
    assert not holds({"suffix": {"type": ".V1"}})


@pytest.mark.parametrize("dialect", ["exact", "prefix", "suffix"])
def test_an_attribute_the_event_lacks_makes_the_filter_false(dialect: str) -> None:
    assert not holds({dialect: {"dataref": "x"}})
    # ...and therefore its negation true.
    assert holds({"not": {dialect: {"dataref": "x"}}})


def test_all_needs_every_nested_filter() -> None:
    both = {"all": [{"prefix": {"type": "nl."}}, {"exact": {"subject": "gebruik-0001"}}]}
    one = {"all": [{"prefix": {"type": "nl."}}, {"exact": {"subject": "other"}}]}
    assert holds(both)
    assert not holds(one)


def test_any_needs_one_nested_filter() -> None:
    one = {"any": [{"prefix": {"type": "com."}}, {"exact": {"subject": "gebruik-0001"}}]}
    none = {"any": [{"prefix": {"type": "com."}}, {"exact": {"subject": "other"}}]}
    assert holds(one)
    assert not holds(none)


def test_not_inverts() -> None:
    assert not holds({"not": {"prefix": {"type": "nl."}}})
    assert holds({"not": {"prefix": {"type": "com."}}})


def test_nesting_composes() -> None:
    raw = {
        "all": [
            {"prefix": {"type": "nl.softwarecatalogus."}},
            {
                "not": {
                    "any": [
                        {"suffix": {"type": ".verwijderd.v1"}},
                        {"exact": {"subject": "gebruik-9999"}},
                    ]
                }
            },
        ]
    }
    assert holds(raw)
    assert not holds(raw, {**EVENT, "subject": "gebruik-9999"})
    assert not holds(raw, {**EVENT, "type": "nl.softwarecatalogus.gebruik.verwijderd.v1"})


def test_every_filter_in_the_list_must_hold_and_empty_list_matches_all() -> None:
    filters = parse_filters([{"prefix": {"type": "nl."}}, {"exact": {"subject": "gebruik-0001"}}])
    assert matches_all(filters, EVENT)
    assert not matches_all(filters, {**EVENT, "subject": "x"})
    assert matches_all([], EVENT)
    assert matches_all(parse_filters([]), {})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"sql": "source LIKE '%x%'"}, "unsupported filter dialect 'sql'"),
        ({"regex": {"type": ".*"}}, "unsupported filter dialect 'regex'"),
        ({"exact": {"type": "a"}, "prefix": {"type": "a"}}, "exactly one dialect key"),
        ({}, "one dialect key"),
        ("exact", "must be an object"),
        ({"all": []}, "filter dialect 'all' needs at least one nested filter"),
        ({"any": []}, "filter dialect 'any' needs at least one nested filter"),
        ({"all": {"exact": {"type": "a"}}}, "filter dialect 'all' takes an array"),
        ({"not": [{"exact": {"type": "a"}}]}, "filter dialect 'not' takes one filter object"),
        (
            {"exact": {"type": 1}},
            "filter dialect 'exact': value of attribute 'type' must be a string",
        ),
        ({"prefix": {"type": None}}, "filter dialect 'prefix': value of attribute 'type'"),
        ({"suffix": {"type": ""}}, "filter dialect 'suffix': value of attribute 'type' is empty"),
        ({"exact": {}}, "filter dialect 'exact' needs at least one attribute"),
        ({"exact": {"": "x"}}, "filter dialect 'exact': attribute names must be non-empty"),
        ({"prefix": "nl."}, "filter dialect 'prefix' takes an object"),
        ({"all": [{"regex": {"type": "x"}}]}, "unsupported filter dialect 'regex'"),
        ({"not": {"not": {"sql": "TRUE"}}}, "unsupported filter dialect 'sql'"),
    ],
)
def test_invalid_filters_are_rejected_with_a_message_naming_the_problem(raw: Any, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_filters([raw])
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)  # what the API maps to 400


def test_filters_must_be_a_list() -> None:
    with pytest.raises(ValueError, match="filters must be an array"):
        parse_filters({"exact": {"type": "x"}})  # type: ignore[arg-type]


def test_filters_round_trip_to_the_same_json() -> None:
    raw = [
        {"exact": {"Type": "nl.softwarecatalogus.gebruik.gewijzigd.v1"}},
        {"prefix": {"source": "urn:nld:"}},
        {"suffix": {"subject": "-0001"}},
        {
            "all": [
                {"any": [{"exact": {"type": "a"}}, {"not": {"prefix": {"subject": "b"}}}]},
                {"not": {"suffix": {"type": ".v2"}}},
            ]
        },
    ]
    filters = parse_filters(raw)
    assert dump_filters(filters) == raw
    assert [f.model_dump() for f in filters] == raw
    assert parse_filters(dump_filters(filters)) == filters


def test_subscription_source_and_types_narrow_before_filters() -> None:
    filters = parse_filters([{"exact": {"subject": "gebruik-0001"}}])
    assert subscription_matches(None, None, [], EVENT)
    assert subscription_matches(EVENT["source"], [EVENT["type"], "x"], filters, EVENT)
    assert not subscription_matches("urn:nld:other", None, [], EVENT)
    assert not subscription_matches(None, ["nl.other.v1"], [], EVENT)
    assert not subscription_matches(None, None, filters, {**EVENT, "subject": "x"})
    # An empty stored list means "no restriction", never "nothing".
    assert subscription_matches(None, [], [], EVENT)


def test_subscription_create_parses_filters_and_matches() -> None:
    sub = SubscriptionCreate.model_validate(
        {
            "sink": "https://ontvanger.example.nl/hook",
            "types": [EVENT["type"]],
            "filters": [{"prefix": {"subject": "gebruik-"}}],
            "protocolsettings": {"headers": {"Authorization": "Bearer abc"}},
        }
    )
    assert sub.protocol == "HTTP"
    assert sub.headers == {"Authorization": "Bearer abc"}
    assert sub.matches(EVENT)
    assert not sub.matches({**EVENT, "subject": "koppeling-1"})
    assert sub.model_dump(exclude_none=True)["filters"] == [{"prefix": {"subject": "gebruik-"}}]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "sink"),
        ({"sink": "ftp://example.nl/x"}, "absolute http:// or https:// URL"),
        ({"sink": "/relative/path"}, "absolute http:// or https:// URL"),
        ({"sink": "https://"}, "must name a host"),
        ({"sink": "https://user:pw@example.nl/"}, "must not contain credentials"),
        ({"sink": "https://example.nl:99999/"}, "invalid port"),
        ({"sink": "https://exa mple.nl/"}, "spaces or control characters"),
        ({"sink": "https://example.nl/", "protocol": "MQTT5"}, "only 'HTTP'"),
        ({"sink": "https://example.nl/", "protocol": "http"}, "only 'HTTP'"),
        ({"sink": "https://example.nl/", "types": []}, "at least 1 item"),
        ({"sink": "https://example.nl/", "types": [""]}, "empty strings"),
        ({"sink": "https://example.nl/", "source": ""}, "at least 1 character"),
        ({"sink": "https://example.nl/", "filters": [{"sql": "TRUE"}]}, "dialect 'sql'"),
        ({"sink": "https://example.nl/", "filter": []}, "Extra inputs are not permitted"),
        (
            {"sink": "https://example.nl/", "protocolsettings": {"method": "PUT"}},
            "protocolsettings.method",
        ),
        (
            {"sink": "https://example.nl/", "protocolsettings": {"headers": {"bad name": "x"}}},
            "not a valid HTTP header name",
        ),
        (
            {"sink": "https://example.nl/", "protocolsettings": {"headers": {"X-A": "a\r\nB: c"}}},
            "line break",
        ),
        (
            {
                "sink": "https://example.nl/",
                "protocolsettings": {"headers": {"X-A": "a", "x-a": "b"}},
            },
            "given twice",
        ),
    ],
)
def test_subscription_create_rejects_bad_input(body: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
        SubscriptionCreate.model_validate(body)


@pytest.mark.parametrize(
    "name",
    [
        "Content-Type",
        "webhook-id",
        "Webhook-Timestamp",
        "WEBHOOK-SIGNATURE",
        "Host",
        "content-length",
        "Transfer-Encoding",
    ],
)
def test_headers_that_would_override_ours_are_rejected(name: str) -> None:
    with pytest.raises(ValidationError, match="cannot be overridden"):
        SubscriptionCreate.model_validate(
            {"sink": "https://example.nl/", "protocolsettings": {"headers": {name: "x"}}}
        )
