"""Build of the C extension h2ws._core; everything else is in pyproject.toml.

Build switches (environment variables, "1" to enable):
  H2WS_DEBUG     -O0 -g, -Wall -Wextra -Werror, allocation counting
  H2WS_SANITIZE  AddressSanitizer + UndefinedBehaviorSanitizer
  H2WS_COVERAGE  gcov instrumentation
"""

import os
import shlex
import subprocess
from pathlib import Path

from setuptools import Extension, setup


def pkg_config(*args: str) -> list[str]:
    out = subprocess.run(
        ["pkg-config", *args, "libnghttp2", "libcrypto"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return shlex.split(out)


def flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


here = Path(__file__).parent
sources = sorted(str(p.relative_to(here)) for p in (here / "csrc").glob("*/*.c") if p.parent.name in ("core", "py"))

cflags = ["-std=c11", "-D_GNU_SOURCE", "-fvisibility=hidden"]
ldflags: list[str] = []
macros: list[tuple[str, str | None]] = []
if flag("H2WS_DEBUG"):
    cflags += ["-O0", "-g3", "-Wall", "-Wextra", "-Werror", "-Wno-missing-field-initializers"]
    macros.append(("H2WS_DEBUG", "1"))
else:
    cflags += ["-O3", "-Wall", "-Wextra"]
    macros.append(("NDEBUG", "1"))
if flag("H2WS_SANITIZE"):
    san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]
    cflags += san + ["-g"]
    ldflags += san
    macros.append(("H2WS_SANITIZE", "1"))
if flag("H2WS_COVERAGE"):
    cflags += ["--coverage", "-O0"]
    ldflags += ["--coverage"]
    macros.append(("H2WS_COVERAGE", "1"))

setup(
    ext_modules=[
        Extension(
            "h2ws._core",
            sources=sources,
            depends=[str(p) for p in here.glob("csrc/*/*.h")],
            extra_compile_args=pkg_config("--cflags") + cflags,
            extra_link_args=pkg_config("--libs") + ldflags,
            define_macros=macros,
        )
    ]
)
