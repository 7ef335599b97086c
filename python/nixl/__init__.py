"""nixl: Python package of the C implementation of NIXL (a drop-in for the reference nixl._api)."""
import os as _os
import sys as _sys

# Load libnixl with global symbols, as a C program linked with it has them: dynamic plugins may
# resolve nixl_* helpers from the library that loads them.
_flags = _sys.getdlopenflags()
_sys.setdlopenflags(_flags | _os.RTLD_GLOBAL)
try:
    from nixl import _bindings  # noqa: F401
finally:
    _sys.setdlopenflags(_flags)

from nixl._api import (  # noqa: F401,E402
    DEFAULT_COMM_PORT,
    nixl_agent,
    nixl_agent_config,
    nixl_backend_handle,
    nixl_prepped_dlist_handle,
    nixl_thread_sync_t,
    nixl_xfer_handle,
)
from nixl._bindings import LIBRARY_VERSION as _LIBRARY_VERSION  # noqa: E402

__version__ = _LIBRARY_VERSION
__all__ = ["DEFAULT_COMM_PORT", "nixl_agent", "nixl_agent_config", "nixl_backend_handle",
           "nixl_prepped_dlist_handle", "nixl_thread_sync_t", "nixl_xfer_handle", "__version__"]
