"""Descriptor lists through pickle, without pickle's power to run code.

`pickle.loads` calls whatever callable the bytes name: anyone who can put bytes in front of it
(a notification, a metadata store, a socket) runs code in this process. Descriptor lists only
ever need their own classes: the `nixl._bindings` lists rebuild themselves from their state
(`__setstate__`, the reference's serialized format). This unpickler resolves those names and
nothing else, so a pickle made by this package or by the reference (which names its module
`nixl_cu12._bindings`, or `nixl._bindings`) loads, and any other global raises
`pickle.UnpicklingError` before anything is called. A walk over the opcodes first refuses what
would still hurt with those two classes (calls with arguments, memo indices that make CPython
allocate gigabytes).
"""
import io
import pickle
import pickletools

# The modules a descriptor-list pickle may name (ours, and the reference's names for it) and the
# classes it may name in them: the picklable lists. nixlRemoteDList refuses pickling.
_MODULES = ("nixl._bindings", "nixl_cu12._bindings")
_CLASSES = ("nixlXferDList", "nixlRegDList")


class DescsUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only the descriptor-list classes."""

    def find_class(self, module, name):
        if module in _MODULES and name in _CLASSES:
            from nixl import _bindings
            return getattr(_bindings, name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: serialized descriptors may only name "
            f"{' or '.join(_CLASSES)} of nixl._bindings")


# Opcodes that call what is on the stack with arguments the pickle chooses. The only callables
# find_class hands out are the two list classes, whose constructor takes a size: REDUCE with
# (0, 10**12) would loop for hours filling a list. Descriptor pickles never use these (they are
# NEWOBJ with no arguments, then BUILD with the state), so they are refused outright.
_CALLING_OPCODES = ("REDUCE", "INST", "OBJ", "NEWOBJ_EX")


def _check_opcodes(data):
    """Refuse, before anything is built, a pickle that calls a class with arguments, or uses a
    memo index that no pickler writes. CPython's unpickler grows its memo to hold the index it
    is given, so ten bytes holding LONG_BINPUT 10**9 make it allocate and clear gigabytes (found
    by tests/fuzz/fuzz_python_descs.py: 24 s and 5 GB for 468 bytes); a pickler numbers its
    memo entries in order, so an index may name an entry already written or the next one. The
    walk also refuses a pickle whose opcodes or lengths do not fit its bytes."""
    entries = 0
    frame_end = 0
    prev = -1  # where the previous opcode started (it ends where this one starts)
    try:
        for op, arg, pos in pickletools.genops(data):
            # An opcode never straddles a frame's end: CPython reads one that does from
            # other bytes than pickletools does, so the walk would check something else.
            if prev < frame_end < pos:
                raise pickle.UnpicklingError("refusing to load: an opcode crosses a frame end")
            prev = pos
            if op.name == "FRAME":
                frame_end = pos + 9 + arg
            elif op.name == "MEMOIZE":
                entries += 1
            elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
                if arg > entries:
                    raise pickle.UnpicklingError(
                        f"refusing to load: memo index {arg} where a pickler would write at "
                        f"most {entries}")
                entries += arg == entries
            elif op.name in _CALLING_OPCODES:
                raise pickle.UnpicklingError(
                    f"refusing to load: opcode {op.name} (serialized descriptors never call "
                    f"anything)")
    except pickle.UnpicklingError:
        raise
    except Exception as e:  # pickletools reports malformed data with ValueError and others
        raise pickle.UnpicklingError(f"refusing to load a malformed pickle: {e}") from None


def loads_descs(data):
    """Load a descriptor list serialized with pickle; UnpicklingError for anything that names
    another class or function, or that is malformed."""
    if isinstance(data, str):
        data = data.encode("latin-1")
    data = bytes(data)
    _check_opcodes(data)
    return DescsUnpickler(io.BytesIO(data)).load()
