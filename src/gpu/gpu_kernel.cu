/*
 * gpu_kernel.cu - the batched copy: one launch moves a whole table of (dst, src, len) chunks.
 *
 * Built by nvcc into a fatbin (machine code for the common GPUs plus PTX that newer ones
 * compile at load time), embedded in libnixl and loaded through the driver API (gpu_copy.c).
 * Each thread block takes chunks in turn (chunk c, c + gridDim.x, ...); the host cut every
 * descriptor into chunks of at most GPU_CHUNK bytes so that one large descriptor spreads over
 * many blocks. Within a chunk the widest access both addresses allow is used (16, 8, 4 or 1
 * bytes), with several loads in flight per thread before the stores.
 */
#include <stdint.h>

struct nixl_gpu_chunk {
    unsigned long long dst, src, len;
};

#define UNROLL 4

template <typename T>
__device__ __forceinline__ void copy_vec(T *d, const T *s, unsigned long long n)
{
    const unsigned long long step = (unsigned long long)blockDim.x * UNROLL;
    unsigned long long i = threadIdx.x;
    for (; i + (UNROLL - 1) * blockDim.x < n; i += step) {
        T v[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; u++)
            v[u] = s[i + u * blockDim.x];
#pragma unroll
        for (int u = 0; u < UNROLL; u++)
            d[i + u * blockDim.x] = v[u];
    }
    for (; i < n; i += blockDim.x)
        d[i] = s[i];
}

__device__ __forceinline__ void copy_bytes(unsigned char *d, const unsigned char *s,
                                           unsigned long long n)
{
    for (unsigned long long i = threadIdx.x; i < n; i += blockDim.x)
        d[i] = s[i];
}

template <typename T>
__device__ __forceinline__ void copy_aligned(unsigned char *d, const unsigned char *s,
                                             unsigned long long n)
{
    /* d and s agree modulo sizeof(T): bytes up to the boundary, vectors, then the tail. */
    unsigned long long head = (sizeof(T) - ((unsigned long long)d & (sizeof(T) - 1))) &
                              (sizeof(T) - 1);
    if (head > n)
        head = n;
    copy_bytes(d, s, head);
    d += head;
    s += head;
    n -= head;
    unsigned long long nv = n / sizeof(T);
    copy_vec((T *)d, (const T *)s, nv);
    copy_bytes(d + nv * sizeof(T), s + nv * sizeof(T), n - nv * sizeof(T));
}

extern "C" __global__ void __launch_bounds__(1024)
    nixl_gpu_copy(const nixl_gpu_chunk *chunks, unsigned int count)
{
    for (unsigned int c = blockIdx.x; c < count; c += gridDim.x) {
        unsigned char *d = (unsigned char *)chunks[c].dst;
        const unsigned char *s = (const unsigned char *)chunks[c].src;
        unsigned long long n = chunks[c].len;
        unsigned long long mis = (unsigned long long)d ^ (unsigned long long)s;
        if ((mis & 15) == 0)
            copy_aligned<uint4>(d, s, n);
        else if ((mis & 7) == 0)
            copy_aligned<uint2>(d, s, n);
        else if ((mis & 3) == 0)
            copy_aligned<unsigned int>(d, s, n);
        else
            copy_bytes(d, s, n);
    }
}
