"""Descriptor lists through pickle, without pickle's power to run code.

`pickle.loads` calls whatever callable the bytes name: anyone who can put bytes in front of it
(a notification, a metadata store, a socket) runs code in this process. Descriptor lists only
ever need their own classes: the `nixl._bindings` lists rebuild themselves from their state
(`__setstate__`, the reference's serialized format). This unpickler resolves those names and
nothing else, so a pickle made by this package or by the reference (which names its module
`nixl_cu12._bindings`, or `nixl._bindings`) loads, and any other global raises
`pickle.UnpicklingError` before anything is called.
"""
import io
import pickle

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


def loads_descs(data):
    """Load a descriptor list serialized with pickle; UnpicklingError for anything that names
    another class or function."""
    if isinstance(data, str):
        data = data.encode("latin-1")
    return DescsUnpickler(io.BytesIO(bytes(data))).load()
