"""Loggers of the nixl package: the tree "nixl", one stdout handler, level from NIXL_LOG_LEVEL."""
import logging as _logging
import os
import sys

_LEVELS = {"TRACE": _logging.DEBUG, "DEBUG": _logging.DEBUG, "INFO": _logging.INFO,
           "WARN": _logging.WARNING, "WARNING": _logging.WARNING, "ERROR": _logging.ERROR,
           "FATAL": _logging.CRITICAL, "CRITICAL": _logging.CRITICAL}


def _root():
    root = _logging.getLogger("nixl")
    if not getattr(root, "_nixl_configured", False):
        handler = _logging.StreamHandler(sys.stdout)
        handler.setFormatter(_logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        level = os.environ.get("NIXL_LOG_LEVEL", "WARN").upper()
        root.setLevel(_LEVELS.get(level, _logging.WARNING))
        root.propagate = False
        root._nixl_configured = True
    return root


def get_logger(name):
    """A logger under "nixl" (name "nixl.x" or "x")."""
    _root()
    if name == "nixl" or name.startswith("nixl."):
        return _logging.getLogger(name)
    return _logging.getLogger("nixl." + name)
