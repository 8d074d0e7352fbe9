"""collect pauses the cyclic garbage collector: it is back as it was, nothing leaks, nothing thawed."""

from __future__ import annotations

import gc
import weakref

import pytest

from icb_bench.verify.collect import _cyclic_gc_paused


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


@pytest.fixture
def gc_state():
    was, frozen = gc.isenabled(), gc.get_freeze_count()
    yield
    gc.unfreeze() if gc.get_freeze_count() != frozen else None
    gc.enable() if was else gc.disable()


def test_a_cycle_made_while_paused_is_still_collected(gc_state):
    gc.enable()
    with _cyclic_gc_paused():
        assert not gc.isenabled()
        ref = weakref.ref(_Node())
        assert ref() is not None  # a cycle is not freed by reference counting
        held = _Node()
    assert gc.isenabled() and gc.get_freeze_count() == 0
    # in the oldest generation already: no young collection traces it again
    assert any(o is held for o in gc.get_objects(2)) and not any(o is held for o in gc.get_objects(1))
    gc.collect()
    assert ref() is None


def _frozen(obj: object) -> bool:
    """In the permanent generation: tracked, yet in none of the collector's generations."""
    return gc.is_tracked(obj) and not any(o is obj for o in gc.get_objects())


def test_the_callers_frozen_objects_stay_frozen(gc_state):
    # judged on an object the test holds: the freeze count alone moves whenever any other frozen
    # object is freed by reference counting (in a full test session, hundreds of thousands are)
    gc.enable()
    held = _Node()
    gc.freeze()
    assert _frozen(held)
    with _cyclic_gc_paused():
        _Node()
    assert gc.isenabled() and gc.get_freeze_count() > 0 and _frozen(held)


def test_a_collector_the_caller_turned_off_stays_off_even_on_error(gc_state):
    gc.disable()
    with pytest.raises(RuntimeError), _cyclic_gc_paused():
        raise RuntimeError("boom")
    assert not gc.isenabled() and gc.get_freeze_count() == 0
    gc.enable()
    with pytest.raises(RuntimeError), _cyclic_gc_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()
