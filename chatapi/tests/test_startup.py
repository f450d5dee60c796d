"""The start-up hooks, then the heap frozen (chatapi.startup)."""

import gc
from collections.abc import Iterator

import pytest

from chatapi import startup


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_after_the_hooks_what_the_process_started_with_is_out_of_the_collectors_way(
    monkeypatch: pytest.MonkeyPatch, unfrozen: None
) -> None:
    ran: list[str] = []
    monkeypatch.setattr(startup, "_hooks", [lambda: ran.append("hook")])
    gc.unfreeze()
    started_with = len(gc.get_objects())

    startup.startup_hooks_run()

    # A full collection now walks only what is allocated from here on.
    assert ran == ["hook"]
    assert gc.get_freeze_count() >= started_with * 0.9
    assert len(gc.get_objects()) < started_with * 0.1
