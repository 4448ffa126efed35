"""The long-lived heap of a serving process, kept out of the cyclic garbage collector's way."""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Collect once, then move every object alive after start-up (modules, stubs, settings, the loaded world) to the
    collector's permanent generation (``gc.freeze``).

    Those objects live as long as the process; left in the generations, every full collection walks them again
    (on the CP, tens of milliseconds each, during which no stream is served). Called by the serving entry points
    once they are up; never by code that builds many apps in one process (tests), since frozen objects are never
    collected.
    """
    gc.collect()
    gc.freeze()
