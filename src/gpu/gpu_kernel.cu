/*
 * gpu_kernel.cu - the batched copy: one launch moves a whole table of (dst, src, len) chunks.
 *
 * Built by nvcc into a fatbin (machine code for the common GPUs plus PTX that newer ones
 * compile at load time), embedded in libnixl and loaded through the driver API (gpu_copy.c).
 * Each warp takes chunks in turn; the host cut every descriptor into chunks of at most
 * GPU_CHUNK bytes so that one large descriptor spreads over many warps. Within a chunk the widest access both addresses allow is used (16, 8, 4 or 1
 * bytes), with several loads in flight per thread before the stores.
 */
#include <stdint.h>

struct nixl_gpu_chunk {
    unsigned long long dst, src, len;
};

#define UNROLL 8
#define WARP 32u

/* One warp copies n elements of T: lane l takes l, l + 32, ..., UNROLL loads in flight before
 * the stores (a 16 KiB descriptor is 32 vectors per lane: four rounds of eight). */
template <typename T>
__device__ __forceinline__ void copy_vec(T *d, const T *s, unsigned long long n, unsigned lane)
{
    const unsigned long long step = (unsigned long long)WARP * UNROLL;
    unsigned long long i = lane;
    for (; i + (UNROLL - 1) * WARP < n; i += step) {
        T v[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; u++)
            v[u] = s[i + u * WARP];
#pragma unroll
        for (int u = 0; u < UNROLL; u++)
            d[i + u * WARP] = v[u];
    }
    for (; i < n; i += WARP)
        d[i] = s[i];
}

__device__ __forceinline__ void copy_bytes(unsigned char *d, const unsigned char *s,
                                           unsigned long long n, unsigned lane)
{
    for (unsigned long long i = lane; i < n; i += WARP)
        d[i] = s[i];
}

template <typename T>
__device__ __forceinline__ void copy_aligned(unsigned char *d, const unsigned char *s,
                                             unsigned long long n, unsigned lane)
{
    /* d and s agree modulo sizeof(T): bytes up to the boundary, vectors, then the tail. */
    unsigned long long head = (sizeof(T) - ((unsigned long long)d & (sizeof(T) - 1))) &
                              (sizeof(T) - 1);
    if (head > n)
        head = n;
    copy_bytes(d, s, head, lane);
    d += head;
    s += head;
    n -= head;
    unsigned long long nv = n / sizeof(T);
    copy_vec((T *)d, (const T *)s, nv, lane);
    copy_bytes(d + nv * sizeof(T), s + nv * sizeof(T), n - nv * sizeof(T), lane);
}

/* Each warp takes chunks in turn (warp w: chunks w, w + all warps, ...): a list of small
 * descriptors keeps every warp busy with its own, and the host cut large ones into chunks. */
extern "C" __global__ void __launch_bounds__(1024)
    nixl_gpu_copy(const nixl_gpu_chunk *chunks, unsigned int count)
{
    unsigned lane = threadIdx.x % WARP;
    unsigned warps = gridDim.x * (blockDim.x / WARP);
    for (unsigned c = blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP; c < count;
         c += warps) {
        unsigned char *d = (unsigned char *)chunks[c].dst;
        const unsigned char *s = (const unsigned char *)chunks[c].src;
        unsigned long long n = chunks[c].len;
        unsigned long long mis = (unsigned long long)d ^ (unsigned long long)s;
        if ((mis & 15) == 0)
            copy_aligned<uint4>(d, s, n, lane);
        else if ((mis & 7) == 0)
            copy_aligned<uint2>(d, s, n, lane);
        else if ((mis & 3) == 0)
            copy_aligned<unsigned int>(d, s, n, lane);
        else
            copy_bytes(d, s, n, lane);
    }
}
