"""Environment for programs nobody here wrote (Chromium, Node, nghttpx,
HAProxy, Hypercorn): the sanitizer run preloads libasan into every process
it starts, which is meant for our extension, not for them. Chromium, for one,
does not start at all under a preloaded ASan runtime."""

from __future__ import annotations

import os

_SANITIZER_VARS = ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "PYTHONMALLOC")


def foreign_env(**extra: str) -> dict[str, str]:
    """A copy of ``os.environ`` without the sanitizer variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in _SANITIZER_VARS}
    env.update(extra)
    return env
