"""nixl._api: the agent API of the reference Python package, over libnixl (C).

Same classes, methods, argument names and order, defaults, return types and exceptions as the
reference nixl._api; the differences are listed in docs/python.md.
"""
import pickle
import sys
from enum import Enum

import numpy as np

from nixl import _bindings as nixlBind
from nixl._bindings import (  # noqa: F401  (re-exported names the reference has here)
    DEFAULT_COMM_PORT,
    nixlRegDList,
    nixlRemoteDList,
    nixlXferDList,
)
from nixl._pickle import loads_descs
from nixl.logging import get_logger

logger = get_logger(__name__)

nixl_backend_handle = int

_SUCCESS = nixlBind.NIXL_SUCCESS
_IN_PROG = nixlBind.NIXL_IN_PROG


class nixl_thread_sync_t(Enum):
    """Agent locking modes; DEFAULT is an alias of NONE."""
    NIXL_THREAD_SYNC_NONE = nixlBind.NIXL_THREAD_SYNC_NONE
    NIXL_THREAD_SYNC_STRICT = nixlBind.NIXL_THREAD_SYNC_STRICT
    NIXL_THREAD_SYNC_RW = nixlBind.NIXL_THREAD_SYNC_RW
    NIXL_THREAD_SYNC_DEFAULT = nixlBind.NIXL_THREAD_SYNC_DEFAULT


class nixl_agent_config:
    """Agent configuration (reference defaults: progress thread on, UCX backend)."""

    def __init__(self, enable_prog_thread=True, enable_listen_thread=False,
                 listen_port=DEFAULT_COMM_PORT, capture_telemetry=False, num_threads=0,
                 backends=["UCX"], sync_mode=None, auth_secret=None):
        if sync_mode is not None and not isinstance(sync_mode, nixl_thread_sync_t):
            raise TypeError("sync_mode must be a nixl_thread_sync_t "
                            f"(got {type(sync_mode).__name__})")
        self.enable_pthread = enable_prog_thread
        self.enable_listen = enable_listen_thread
        self.port = listen_port
        self.capture_telemetry = capture_telemetry
        self.num_threads = num_threads
        self.backends = list(backends)
        self.sync_mode = sync_mode
        # Authenticated metadata (docs/security.md); None: NIXL_AUTH_SECRET[_FILE] if set.
        self.auth_secret = auth_secret


def _released_error(handle):
    # The reference would use the freed request; refuse instead.
    raise nixlBind.nixlInvalidParamError(f"NIXL_ERR_INVALID_PARAM: {handle!r} was released")


def _live(handle):
    """The int value of a live handle wrapper."""
    if handle._released:
        _released_error(handle)
    return handle._handle


class _handle_base:
    __slots__ = ("_handle", "_agent", "_released", "_leaks")

    def __init__(self, agent, value, leaks=None):
        self._agent = agent
        self._handle = value
        self._released = False
        self._leaks = leaks

    def __repr__(self):
        return f"{type(self).__name__}(handle=0x{self._handle:x}, released={self._released})"

    def __int__(self):
        return self._handle

    def __index__(self):
        return self._handle

    def __del__(self):
        try:
            self.release()
        except Exception as e:  # a finaliser must not raise
            logger.error("could not release %r: %s", self, e)
            if self._leaks is not None:
                self._leaks.append(self)


class nixl_prepped_dlist_handle(_handle_base):
    """A prepared descriptor list (prep_xfer_dlist); released on release() or collection."""
    __slots__ = ()

    def release(self):
        if not self._released:
            self._agent.releasedDlistH(self._handle)
            self._released = True


class nixl_xfer_handle(_handle_base):
    """A transfer request; released on release() or collection."""
    __slots__ = ()

    def release(self):
        if not self._released:
            self._agent.releaseXferReq(self._handle)  # raises (e.g. nixlRepostActiveError): kept
            self._released = True


_NUM_THREADS_KEY = {"UCX": "num_threads", "OBJ": "num_threads", "LIBFABRIC": "num_threads",
                    "GDS_MT": "thread_count", "UCCL": "num_cpus"}


class nixl_agent:
    """A transfer agent (reference nixl._api.nixl_agent)."""

    def __init__(self, agent_name, nixl_conf=None, instantiate_all=False):
        if nixl_conf is not None and instantiate_all:
            logger.warning("instantiate_all is ignored when a config is given")
            instantiate_all = False
        if nixl_conf is None:
            nixl_conf = nixl_agent_config()
        if not agent_name:
            raise ValueError("agent name must not be empty")
        sync = nixl_conf.sync_mode
        if sync is None:
            sync = (nixl_thread_sync_t.NIXL_THREAD_SYNC_STRICT if nixl_conf.enable_listen
                    else nixl_thread_sync_t.NIXL_THREAD_SYNC_NONE)
        cfg = nixlBind.nixlAgentConfig(bool(nixl_conf.enable_pthread),
                                       bool(nixl_conf.enable_listen), int(nixl_conf.port),
                                       int(sync.value), 1, 0, 100000,
                                       bool(nixl_conf.capture_telemetry))
        if getattr(nixl_conf, "auth_secret", None) is not None:
            cfg.authSecret = str(nixl_conf.auth_secret)
        self.name = agent_name
        self.notifs = {}
        self.backends = {}
        self.backend_mems = {}
        self.backend_options = {}
        self._backend_names = {}
        self._leaked_xfer_handles = []
        self.agent = nixlBind.nixlAgent(agent_name, cfg)

        self.plugin_list = self.agent.getAvailPlugins()
        if len(self.plugin_list) == 0:
            raise RuntimeError("No plugins available for NIXL, cannot start transfers!")
        self.plugin_b_options = {}
        self.plugin_mem_types = {}
        for plugin in self.plugin_list:   # as the reference, minus plugins that fail to load
            self._plugin_info(plugin)
        self.nixl_mems = {"DRAM": nixlBind.DRAM_SEG, "VRAM": nixlBind.VRAM_SEG,
                          "cpu": nixlBind.DRAM_SEG, "cuda": nixlBind.VRAM_SEG,
                          "BLOCK": nixlBind.BLK_SEG, "OBJ": nixlBind.OBJ_SEG,
                          "FILE": nixlBind.FILE_SEG}
        self.nixl_ops = {"WRITE": nixlBind.NIXL_WRITE, "READ": nixlBind.NIXL_READ}

        wanted = self.plugin_list if instantiate_all else nixl_conf.backends
        for bknd in wanted:
            if bknd not in self.plugin_list:
                logger.warning("plugin %s is not available, skipping it", bknd)
                continue
            init = {}
            if nixl_conf.num_threads > 0 and bknd in _NUM_THREADS_KEY:
                init[_NUM_THREADS_KEY[bknd]] = str(nixl_conf.num_threads)
            if instantiate_all:
                # The plugin folder may hold plugins that do not load here: skip them.
                try:
                    self.create_backend(bknd, init)
                except Exception as e:
                    logger.warning("plugin %s could not be instantiated: %s", bknd, e)
            else:
                self.create_backend(bknd, init)
        logger.info("initialized NIXL agent %s", agent_name)

    def __del__(self):
        leaks = getattr(self, "_leaked_xfer_handles", [])
        while leaks:
            h = leaks.pop()
            try:
                h.release()
            except Exception as e:
                logger.error("leaked transfer handle %r still cannot be released: %s", h, e)

    # ---- plugins and backends ----

    def _plugin_info(self, backend):
        if backend not in self.plugin_b_options:
            if backend not in self.plugin_list:
                return None
            try:
                opts, mems = self.agent.getPluginParams(backend)
            except Exception as e:
                logger.info("plugin %s cannot be loaded: %s", backend, e)
                return None
            self.plugin_b_options[backend] = opts
            self.plugin_mem_types[backend] = mems
        return self.plugin_b_options[backend], self.plugin_mem_types[backend]

    def get_plugin_list(self):
        return self.plugin_list

    def get_plugin_mem_types(self, backend):
        info = self._plugin_info(backend)
        if info is None:
            logger.warning("plugin %s is not available", backend)
            return []
        return info[1]

    def get_plugin_params(self, backend):
        info = self._plugin_info(backend)
        if info is None:
            logger.warning("plugin %s is not available", backend)
            return {}
        return info[0]

    def get_backend_mem_types(self, backend):
        if backend not in self.backends:
            logger.warning("backend %s was not created", backend)
            return []
        return self.backend_mems[backend]

    def get_backend_params(self, backend):
        if backend not in self.backends:
            logger.warning("backend %s was not created", backend)
            return {}
        return self.backend_options[backend]

    def create_backend(self, backend, initParams={}):
        handle = self.agent.createBackend(backend, dict(initParams))
        self.backends[backend] = handle
        self._backend_names[handle] = backend
        opts, mems = self.agent.getBackendParams(handle)
        self.backend_mems[backend] = mems
        self.backend_options[backend] = opts

    def _handles(self, backends):
        if backends is None:
            return []
        if isinstance(backends, (str, bytes)):
            backends = [backends]
        return [self.backends[b.decode() if isinstance(b, bytes) else b] for b in backends]

    # ---- registration ----

    def register_memory(self, reg_list, mem_type=None, backends=[]):
        descs = self.get_reg_descs(reg_list, mem_type)
        if descs is None:
            raise TypeError("register_memory: unsupported descriptor input")
        self.agent.registerMem(descs, self._handles(backends))
        return descs

    def deregister_memory(self, dereg_list, backends=[]):
        if not isinstance(dereg_list, nixlRegDList):
            dereg_list = self.get_reg_descs(dereg_list)
            if dereg_list is None:
                raise TypeError("deregister_memory expects a nixlRegDList")
        self.agent.deregisterMem(dereg_list, self._handles(backends))

    def query_memory(self, reg_list, backend, mem_type=None):
        if backend not in self.backends:
            raise ValueError(f"backend {backend} was not created")
        descs = self.get_reg_descs(reg_list, mem_type)
        if descs is None:
            raise TypeError("query_memory: unsupported descriptor input")
        return self.agent.queryMem(descs, self.backends[backend])

    def make_connection(self, remote_agent, backends=[]):
        self.agent.makeConnection(remote_agent, self._handles(backends))

    # ---- transfers ----

    def prep_xfer_dlist(self, agent_name, xfer_list, mem_type=None, backends=[]):
        descs = self.get_xfer_descs(xfer_list, mem_type)
        if descs is None:
            raise TypeError("prep_xfer_dlist: unsupported descriptor input")
        if agent_name == "NIXL_INIT_AGENT":
            agent_name = ""
        h = self.agent.prepXferDlist(agent_name, descs, self._handles(backends))
        return nixl_prepped_dlist_handle(self.agent, h)

    def make_prepped_xfer(self, operation, local_xfer_side, local_indices, remote_xfer_side,
                          remote_indices, notif_msg=b"", backends=[], skip_desc_merge=False):
        op = self.nixl_ops[operation]
        if isinstance(local_indices, np.ndarray):
            local_indices = np.ascontiguousarray(local_indices, dtype=np.int32)
        if isinstance(remote_indices, np.ndarray):
            remote_indices = np.ascontiguousarray(remote_indices, dtype=np.int32)
        h = self.agent.makeXferReq(op, _live(local_xfer_side), local_indices,
                                   _live(remote_xfer_side), remote_indices, notif_msg,
                                   self._handles(backends), skip_desc_merge)
        return nixl_xfer_handle(self.agent, h, self._leaked_xfer_handles)

    def initialize_xfer(self, operation, local_descs, remote_descs, remote_agent, notif_msg=b"",
                        backends=[]):
        op = self.nixl_ops[operation]
        h = self.agent.createXferReq(op, local_descs, remote_descs, remote_agent, notif_msg,
                                     self._handles(backends))
        return nixl_xfer_handle(self.agent, h, self._leaked_xfer_handles)

    def transfer(self, handle, notif_msg=b""):
        if handle._released:
            _released_error(handle)
        if notif_msg:
            st = self.agent.postXferReq(handle._handle, notif_msg)
        else:
            st = self.agent.postXferReq(handle._handle)
        return "DONE" if st is _SUCCESS else "PROC" if st is _IN_PROG else "ERR"

    def check_xfer_state(self, handle):
        if handle._released:
            _released_error(handle)
        st = self.agent.getXferStatus(handle._handle)
        return "DONE" if st is _SUCCESS else "PROC" if st is _IN_PROG else "ERR"

    def estimate_xfer_cost(self, req_handle):
        dur, err, method = self.agent.estimateXferCost(_live(req_handle))
        return dur, err, ("ANALYTICAL_BACKEND" if method == 0 else "UNKNOWN")

    def get_xfer_telemetry(self, handle):
        return self.agent.getXferTelemetry(_live(handle))

    def query_xfer_backend(self, handle):
        b = self.agent.queryXferBackend(_live(handle))
        return self._backend_names.get(b) or self.agent.getBackendName(b)

    def release_xfer_handle(self, handle):
        handle.release()

    def release_dlist_handle(self, handle):
        handle.release()

    def prep_mem_view(self, dlist, *, backends=None):
        return self.agent.prepMemView(dlist, self._handles(backends))

    def release_mem_view(self, mvh):
        self.agent.releaseMemView(mvh)

    # ---- notifications ----

    def get_new_notifs(self, backends=[]):
        return self.agent.getNotifs({}, self._handles(backends))

    def update_notifs(self, backends=[]):
        self.notifs = self.agent.getNotifs(self.notifs, self._handles(backends))
        return self.notifs

    def check_remote_xfer_done(self, remote_agent_name, lookup_tag, backends=[],
                               tag_is_prefix=True):
        if isinstance(lookup_tag, str):
            lookup_tag = lookup_tag.encode()
        self.update_notifs(backends)
        msgs = self.notifs.get(remote_agent_name, [])
        for i, msg in enumerate(msgs):
            if (msg.startswith(lookup_tag) if tag_is_prefix else lookup_tag in msg):
                del msgs[i]
                return True
        return False

    def send_notif(self, remote_agent_name, notif_msg, backend=None):
        # The reference passes one int where a list is expected (TypeError): take a name or a list.
        self.agent.genNotif(remote_agent_name, notif_msg, self._handles(backend))

    # ---- metadata ----

    def get_agent_metadata(self):
        return self.agent.getLocalMD()

    def get_partial_agent_metadata(self, descs, inc_conn_info=False, backends=[]):
        return self.agent.getLocalPartialMD(descs, inc_conn_info, self._handles(backends))

    def add_remote_agent(self, metadata):
        return self.agent.loadRemoteMD(metadata)

    def remove_remote_agent(self, agent):
        self.agent.invalidateRemoteMD(agent)

    def send_local_metadata(self, ip_addr="", port=DEFAULT_COMM_PORT):
        self.agent.sendLocalMD(ip_addr, port)

    def send_partial_agent_metadata(self, descs, inc_conn_info=False, backends=[], ip_addr="",
                                    port=DEFAULT_COMM_PORT, label=""):
        self.agent.sendLocalPartialMD(descs, inc_conn_info, self._handles(backends), ip_addr, port,
                                      label)

    def fetch_remote_metadata(self, remote_agent, ip_addr="", port=DEFAULT_COMM_PORT, label=""):
        self.agent.fetchRemoteMD(remote_agent, ip_addr, port, label)

    def invalidate_local_metadata(self, ip_addr="", port=DEFAULT_COMM_PORT):
        self.agent.invalidateLocalMD(ip_addr, port)

    def check_remote_metadata(self, agent, descs=None):
        return self.agent.checkRemoteMD(agent, descs) is _SUCCESS

    def get_listen_port(self):
        """The side-channel listener's port (not in the reference; useful with listen_port=0)."""
        return self.agent.getListenPort()

    # ---- descriptors ----

    @staticmethod
    def _tensor_mem_type(tensor):
        return "DRAM" if tensor.device.type == "cpu" else "VRAM"

    @staticmethod
    def _tensor_desc(tensor):
        # A CUDA tensor's devId is its GPU index, as the reference (and the core's VRAM check,
        # which refuses memory that is not on the GPU devId names).
        dev = 0 if tensor.device.type == "cpu" else (tensor.device.index or 0)
        return (tensor.data_ptr(), tensor.numel() * tensor.element_size(), dev)

    def _tensors(self, tensors):
        """Descriptor tuples and mem type of a list of tensors, or (None, None) after logging
        why: every element must be a contiguous tensor on the first one's device, because one
        descriptor list has one memory type and a tensor's bytes must be one range."""
        torch = sys.modules["torch"]
        if not all(isinstance(t, torch.Tensor) for t in tensors):
            logger.error("a list that starts with a tensor must hold only tensors")
            return None, None
        dev = tensors[0].device
        if any(t.device != dev for t in tensors):
            logger.error("all tensors must be on the same device")
            return None, None
        if not all(t.is_contiguous() for t in tensors):
            logger.error("tensors must be contiguous")
            return None, None
        return [self._tensor_desc(t) for t in tensors], self._tensor_mem_type(tensors[0])

    def _from_tensors(self, tensors, cls, arity):
        tuples, mt = self._tensors(tensors)
        if tuples is None:
            return None
        if arity == 4:
            tuples = [t + (b"",) for t in tuples]
        return cls(self.nixl_mems[mt], tuples)

    def _descs(self, descs, mem_type, cls, other, arity):
        if isinstance(descs, cls):
            return descs
        if isinstance(descs, other):
            logger.error("got a %s where a %s was expected", type(descs).__name__, cls.__name__)
            return None
        torch = sys.modules.get("torch")
        if isinstance(descs, list):
            first = descs[0]  # an empty list raises IndexError, as in the reference
            if isinstance(first, tuple):
                if mem_type is None:
                    logger.error("mem_type is required for a list of tuples")
                    return None
                if any(len(d) != arity for d in descs):
                    logger.error("descriptor tuples must have %d elements", arity)
                    return None
                return cls(self.nixl_mems[mem_type], descs)
            if torch is not None and isinstance(first, torch.Tensor):
                return self._from_tensors(descs, cls, arity)
            return None
        if isinstance(descs, np.ndarray):
            if mem_type is None:
                logger.error("mem_type is required for a numpy array")
                return None
            if descs.ndim != 2 or descs.shape[1] != 3 or descs.dtype not in (np.int64, np.uint64):
                logger.error("expected an N x 3 int64/uint64 array, got %s %s", descs.shape,
                             descs.dtype)
                return None
            return cls(self.nixl_mems[mem_type], np.ascontiguousarray(descs))
        if torch is not None and isinstance(descs, torch.Tensor):
            return self._from_tensors([descs], cls, arity)
        return None

    def get_xfer_descs(self, descs, mem_type=None):
        return self._descs(descs, mem_type, nixlXferDList, nixlRegDList, 3)

    def get_reg_descs(self, descs, mem_type=None):
        return self._descs(descs, mem_type, nixlRegDList, nixlXferDList, 4)

    def get_remote_descs(self, descs, mem_type=None):
        if isinstance(descs, nixlRemoteDList):
            return descs
        if isinstance(descs, list) and isinstance(descs[0], tuple):
            if mem_type is None:
                logger.error("mem_type is required for a list of tuples")
                return None
            if any(len(d) != 4 for d in descs):
                return None
            return nixlRemoteDList(self.nixl_mems[mem_type], descs)
        return None

    def get_serialized_descs(self, descs):
        return pickle.dumps(descs)

    def deserialize_descs(self, serialized_descs):
        # Only descriptor-list classes are resolved: these bytes usually come from a peer
        # (a notification), and plain pickle.loads would run whatever they name.
        return loads_descs(serialized_descs)
