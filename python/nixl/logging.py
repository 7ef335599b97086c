"""Loggers of the nixl package, set up as the reference package sets up its own.

The tree "nixl" logs at INFO to stdout through one handler, with the reference's line format
("2025-01-31 12:00:00 NIXL INFO    _api.py:175 message"), and does not propagate to the root
logger. NIXL_LOG_LEVEL (TRACE, DEBUG, INFO, WARN, WARNING, ERROR, FATAL, CRITICAL) overrides the
level; an unknown value is reported and INFO kept. Programs written for the reference that report
through this logger print the same lines. (The C library's own log, on stderr, stays at WARN.)
"""
import logging as _logging
import os
import sys

_LEVELS = {"TRACE": _logging.DEBUG, "DEBUG": _logging.DEBUG, "INFO": _logging.INFO,
           "WARN": _logging.WARNING, "WARNING": _logging.WARNING, "ERROR": _logging.ERROR,
           "FATAL": _logging.CRITICAL, "CRITICAL": _logging.CRITICAL}
_FORMAT = "%(asctime)s NIXL %(levelname)-7s %(filename)s:%(lineno)d %(message)s"
_DATEFMT = "%Y-%m-%d %H:%M:%S"


def _root():
    root = _logging.getLogger("nixl")
    if getattr(root, "_nixl_configured", False):
        return root
    handler = _logging.StreamHandler(sys.stdout)
    handler.setFormatter(_logging.Formatter(_FORMAT, _DATEFMT))
    root.addHandler(handler)
    root.setLevel(_logging.INFO)
    root.propagate = False
    root._nixl_configured = True
    env = os.environ.get("NIXL_LOG_LEVEL")
    if env:
        level = _LEVELS.get(env.strip().upper())
        if level is None:
            root.warning("NIXL_LOG_LEVEL=%r is not a log level (%s): keeping INFO", env,
                         ", ".join(_LEVELS))
        else:
            root.setLevel(level)
    return root


def get_logger(name):
    """A logger under "nixl": "nixl" and "nixl.x" as given, "_x" or "x" as "nixl.x"."""
    _root()
    if name == "nixl" or name.startswith("nixl."):
        return _logging.getLogger(name)
    return _logging.getLogger("nixl." + name.lstrip("_"))
