"""CPU of publish's source check per event against many owned sources, in process.

    .venv/bin/python -m benchmarks.source_owners                  # 4,000 numbered, 1,000 registered
    .venv/bin/python -m benchmarks.source_owners --organisaties 20000

An organisation-bound publisher's every event is looked up in the owners of sources
(:class:`hub.services.source_owners.SourceIndex`: each organisatie's OIN, each systeem token's
registered sources) by :func:`hub.api.ownership._taken_source`. Prints the µs per event for
sources seen before (the canonical form cached) and for sources never seen, and the time to
build the index, which each API process does at most every two seconds while such publishers
publish (``TokenService.source_owners``).
"""

from __future__ import annotations

import argparse
import time

from hub.api.ownership import _taken_source
from hub.services.access import Principal, Role
from hub.services.source_owners import SourceIndex, SourceOwner, canonical_source

HUB = "urn:nld:oin:00000000000000000000:systeem:koppelhub"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--organisaties", type=int, default=4000, help="organisaties with an OIN")
    parser.add_argument("--registered", type=int, default=1000, help="sources registered to systeem tokens")
    parser.add_argument("--events", type=int, default=1000)
    args = parser.parse_args()

    owners = [
        SourceOwner(f"urn:nld:oin:{i:020d}", f"org-{i}", "names an OIN", numbered=True)
        for i in range(args.organisaties)
    ]
    owners += [
        SourceOwner(f"urn:nld:gem-{i}:systeem:zaken", f"org-{i}", "is registered")
        for i in range(args.registered)
    ]
    start = time.perf_counter()
    index = SourceIndex.of(owners)
    built = time.perf_counter() - start
    publisher = Principal("beheerder", Role.GEBRUIK_BEHEERDER, "org-1")

    def per_event(sources: list[str]) -> float:
        start = time.perf_counter()
        for source in sources:
            assert _taken_source(publisher, source, HUB, index) is None
        return (time.perf_counter() - start) / len(sources) * 1e6

    own = f"urn:nld:oin:{1:020d}:systeem:zaken"
    seen = per_event([own] * args.events)
    canonical_source.cache_clear()
    fresh = per_event([f"{own}:{n}" for n in range(args.events)])
    print(f"owners: {len(owners):,} ({args.organisaties:,} numbered, {args.registered:,} registered)")
    print(f"per event, a source seen before: {seen:.1f} µs; a source never seen: {fresh:.1f} µs")
    print(f"building the index: {built * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
