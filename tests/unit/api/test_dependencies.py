"""The API's route dependencies run on the event loop: FastAPI runs a plain ``def`` dependency
in its thread pool, a thread hand-off on every request that uses it (``context`` sat on every
publish)."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from tests.support.memory_app import MemoryApp


def _calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _dependencies(routes: Iterable[Any]) -> Iterator[tuple[str, Any]]:
    """Every dependency of every route, through included routers (FastAPI wraps them)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield from ((route.path, call) for call in _calls(route.dependant))
        router = getattr(route, "original_router", None)
        if router is not None:
            yield from (("router", d.dependency) for d in router.dependencies)
            yield from _dependencies(router.routes)


def test_no_route_dependency_needs_the_thread_pool(memory: MemoryApp) -> None:
    found = list(_dependencies(memory.app.routes))
    sync = {f"{path}: {call.__qualname__}" for path, call in found if not inspect.iscoroutinefunction(call)}
    assert len(found) > 10  # the walk reaches the included routers' routes
    assert sync == set()
