"""Test helpers of the reference package: aligned host buffers by address."""
import ctypes

_libc = ctypes.CDLL(None)
_libc.posix_memalign.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t, ctypes.c_size_t]
_libc.free.argtypes = [ctypes.c_void_p]


def malloc_passthru(size):
    """Allocate `size` bytes aligned to 4096 and return the address (int)."""
    p = ctypes.c_void_p()
    if _libc.posix_memalign(ctypes.byref(p), 4096, max(int(size), 1)) != 0:
        raise MemoryError("posix_memalign failed")
    return p.value


def free_passthru(addr):
    """Free memory from malloc_passthru()."""
    _libc.free(ctypes.c_void_p(addr))


def ba_buf(addr, size):
    """Fill `size` bytes at `addr` with 0xBA."""
    ctypes.memset(addr, 0xBA, size)


def verify_transfer(addr1, addr2, size):
    """Whether the two buffers hold the same bytes (raises AssertionError otherwise)."""
    a = ctypes.string_at(addr1, size)
    b = ctypes.string_at(addr2, size)
    assert a == b, "transfer verification failed"
    return True
