"""nixl under the reference meta-package's module name (nixl_cu12), so that code and pickles
written against the reference (which name "nixl_cu12._bindings") load with this package."""
import sys

import nixl
import nixl._api
import nixl._bindings
import nixl._utils
import nixl.logging
from nixl import *  # noqa: F401,F403

for _sub in ("_api", "_bindings", "_utils", "logging"):
    sys.modules[__name__ + "." + _sub] = sys.modules["nixl." + _sub]
    globals()[_sub] = sys.modules["nixl." + _sub]
__version__ = nixl.__version__
del _sub
