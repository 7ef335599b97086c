"""Build the nixl package against an installed libnixl (pip install ./python).

Where libnixl is found, in order: $NIXL_PREFIX (its include/ and lib*/ folders), pkg-config
"nixl", the compiler's default folders. When none has it, the build stops with a message saying
how to build and install libnixl first, instead of a linker error. The package's version is the
library's (meson.build's project() version, through nixl.pc or nixl_version.h). Offline and on
Debian's interpreter: pip install --no-build-isolation ./python (inside a venv made with
--system-site-packages, or with --break-system-packages). See docs/python.md.
"""
import ctypes.util
import glob
import os
import re
import shlex
import subprocess
import sys

from setuptools import Extension, setup

HOW_TO = """
The nixl Python package is a binding of libnixl, the C library, which must be built and
installed first. From the top of the source tree (meson, ninja and a C compiler needed):

    meson setup build && ninja -C build && sudo meson install -C build

or, into a folder of your own, then point this build at it:

    meson setup build --prefix=$HOME/nixl && ninja -C build && meson install -C build
    NIXL_PREFIX=$HOME/nixl pip install ./python

(`make install` does the first; docs/python.md has the details.)"""


def fail(why):
    sys.exit(f"error: cannot build the nixl package: {why}\n{HOW_TO}")


def has_lib(dirs):
    return any(glob.glob(os.path.join(d, "libnixl.so*")) for d in dirs)


def has_headers(dirs):
    return any(os.path.exists(os.path.join(d, "nixl.h")) and
               os.path.exists(os.path.join(d, "nixl_version.h")) for d in dirs)


def pkg_config(*args):
    try:
        return subprocess.check_output(["pkg-config", *args, "nixl"], text=True,
                                       stderr=subprocess.DEVNULL).strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def from_prefix(prefix):
    incdirs = [os.path.join(prefix, "include")]
    cands = (glob.glob(os.path.join(prefix, "lib*")) +
             glob.glob(os.path.join(prefix, "lib", "*-linux-gnu")))
    libdirs = [d for d in cands if has_lib([d])]
    if not libdirs:
        fail(f"NIXL_PREFIX={prefix} has no libnixl.so in its lib*/ folders")
    if not has_headers(incdirs):
        fail(f"NIXL_PREFIX={prefix} has no include/nixl.h and include/nixl_version.h")
    return incdirs, libdirs


def from_pkg_config():
    cflags, libs = pkg_config("--cflags-only-I"), pkg_config("--libs-only-L")
    if cflags is None or libs is None:
        return None
    incdirs = [f[2:] for f in shlex.split(cflags)]
    libdirs = [f[2:] for f in shlex.split(libs)]
    # pkg-config leaves system folders out of its output: then the loader's search decides
    if not (has_lib(libdirs) if libdirs else ctypes.util.find_library("nixl")):
        fail("pkg-config knows nixl, but its libnixl.so is missing (a removed installation?)")
    return incdirs, libdirs


def from_default_paths():
    incdirs = ["/usr/local/include", "/usr/include"]
    if ctypes.util.find_library("nixl") and has_headers(incdirs):
        return [d for d in incdirs if os.path.exists(os.path.join(d, "nixl.h"))][:1], []
    fail("libnixl is not installed where this build can find it: NIXL_PREFIX is not set, "
         "pkg-config does not know \"nixl\" (see PKG_CONFIG_PATH), and the loader's default "
         "folders do not have libnixl.so with its headers")


def find_nixl():
    prefix = os.environ.get("NIXL_PREFIX")
    if prefix:
        return from_prefix(prefix)
    return from_pkg_config() or from_default_paths()


def version(incdirs):
    v = None if os.environ.get("NIXL_PREFIX") else pkg_config("--modversion")
    if v:
        return v
    for d in incdirs:
        try:
            with open(os.path.join(d, "nixl_version.h"), encoding="utf-8") as f:
                m = re.search(r'#define NIXL_VERSION_STRING "([^"]+)"', f.read())
        except OSError:
            continue
        if m:
            return m.group(1)
    fail("no nixl_version.h says which version libnixl is")


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
