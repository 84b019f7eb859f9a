"""Compile a small C kernel once per machine and load one function of it through ctypes.

The source is compiled with the system C compiler (``$CC``, default ``cc``; ``-O3 -march=native
-ffast-math``) into a cache directory (``$LOCALITY_KERNEL_DIR``, default ``~/.cache/locality_lib``). The
binary's name hashes the source, the compiler, the flags and the CPU model (``-march=native`` binaries
are not shared across CPUs). ctypes releases the GIL during a call, so Python threads can run a kernel
on disjoint work at once. Without a working compiler :func:`compile_kernel` warns and returns None and
the caller uses its torch path.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch

__all__ = ["compile_kernel", "ptr"]

#: ``-ffast-math`` at compile time only: linked with it, gcc < 13 would add ``crtfastmath.o``, which
#: flushes denormals to zero for the whole process when the library loads.
CFLAGS = ["-O3", "-march=native", "-ffast-math", "-fPIC"]


def _cache_dir() -> Path:
    return Path(os.environ.get("LOCALITY_KERNEL_DIR", Path.home() / ".cache" / "locality_lib"))


def _cpu_model() -> str:
    """The processor's name (``/proc/cpuinfo`` where there is one), part of the compiled kernel's cache key."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine() + " " + platform.processor()


def compile_kernel(name: str, source: str, symbol: str, user: str):
    """The function ``symbol`` of ``source`` (compiled on first use, then cached), or None with a warning.

    ``name``: the binary's file name stem; ``user``: what falls back to torch, for the warning.
    """
    cc = os.environ.get("CC", "cc")
    tag = hashlib.sha1(" ".join([source, cc, *CFLAGS, _cpu_model()]).encode()).hexdigest()[:16]
    path = _cache_dir() / f"{name}_{tag}.so"
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
                c, o, so = (Path(tmp) / f"{name}{ext}" for ext in (".c", ".o", ".so"))
                c.write_text(source)
                for cmd in ([cc, *CFLAGS, "-c", str(c), "-o", str(o)], [cc, "-shared", str(o), "-o", str(so), "-lm"]):
                    subprocess.run(cmd, check=True, capture_output=True, text=True)
                os.replace(so, path)  # atomic: a concurrent process sees all of it or nothing
        fn = getattr(ctypes.CDLL(str(path)), symbol)
        fn.restype = None
        return fn
    except (OSError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", "") or err
        warnings.warn(f"locality_lib: the CPU kernel {name} could not be compiled with {cc!r} ({detail}); "
                      f"{user} uses the slower torch path. Install a C compiler or set CC to one.")
        return None


def ptr(t: torch.Tensor):
    """The address of a tensor's data for ctypes."""
    return ctypes.c_void_p(t.data_ptr())
