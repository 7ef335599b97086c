"""Build the nixl package against an installed libnixl (pip install ./python).

Where libnixl is found, in order: $NIXL_PREFIX (its include/ and lib*/ folders), pkg-config
"nixl", the source tree (../include) with -lnixl on the default library path. Offline and on
Debian's interpreter: pip install --no-build-isolation ./python (inside a venv made with
--system-site-packages, or with --break-system-packages). See docs/python.md.
"""
import glob
import os
import re
import shlex
import subprocess

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def find_nixl():
    prefix = os.environ.get("NIXL_PREFIX")
    if prefix:
        cands = (glob.glob(os.path.join(prefix, "lib*")) +
                 glob.glob(os.path.join(prefix, "lib", "*-linux-gnu")))
        libdirs = [d for d in cands if glob.glob(os.path.join(d, "libnixl.so*"))]
        return [os.path.join(prefix, "include")], libdirs
    try:
        cflags = subprocess.check_output(["pkg-config", "--cflags-only-I", "nixl"], text=True)
        libs = subprocess.check_output(["pkg-config", "--libs-only-L", "nixl"], text=True)
        return ([f[2:] for f in shlex.split(cflags)], [f[2:] for f in shlex.split(libs)])
    except (OSError, subprocess.CalledProcessError):
        return [os.path.join(HERE, "..", "include")], []


def version(incdirs):
    for d in incdirs:
        try:
            text = open(os.path.join(d, "nixl.h")).read()
        except OSError:
            continue
        parts = [re.search(rf"#define NIXL_VERSION_{k} (\d+)", text)
                 for k in ("MAJOR", "MINOR", "PATCH")]
        if all(parts):
            return ".".join(p.group(1) for p in parts)
    return "0.0.0"


incdirs, libdirs = find_nixl()
ext = Extension(
    "nixl._bindings",
    sources=[os.path.join("src", f) for f in (
        "module.c", "dlist.c", "dlist_ops.c", "config.c", "agent.c",
        "agent_md.c", "agent_xfer.c", "agent_notif.c")],
    include_dirs=incdirs,
    library_dirs=libdirs,
    runtime_library_dirs=libdirs,
    libraries=["nixl"],
    extra_compile_args=["-std=c11", "-fvisibility=hidden", "-D_GNU_SOURCE"],
)

setup(
    name="nixl",
    version=version(incdirs),
    description="Python package of the C implementation of NIXL (drop-in for nixl._api)",
    packages=["nixl", "nixl_cu12"],
    ext_modules=[ext],
    install_requires=["numpy"],
    python_requires=">=3.10",
)
