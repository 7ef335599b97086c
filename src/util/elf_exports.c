#include "elf_exports.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Plugins are megabytes; refuse to read anything absurd. */
#define ELF_MAX_FILE ((size_t)256 << 20)

/* [off, off+n) inside [0, len)? Written so that no addition can overflow. */
static int in_bounds(size_t len, uint64_t off, uint64_t n)
{
    return off <= len && n <= len - off;
}

static int read_at(const unsigned char *img, size_t len, uint64_t off, void *out, size_t n)
{
    if (!in_bounds(len, off, n))
        return 0;
    memcpy(out, img + off, n); /* the image need not be aligned for Elf64 structures */
    return 1;
}

nixl_elf_result_t nixl_elf_exports(const void *image, size_t len, const char *name)
{
    const unsigned char *img = image;
    Elf64_Ehdr eh;
    if (!img || !name || !read_at(img, len, 0, &eh, sizeof(eh)))
        return NIXL_ELF_NOT_ELF;
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
        eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_shentsize != sizeof(Elf64_Shdr))
        return NIXL_ELF_NOT_ELF;
    if (!in_bounds(len, eh.e_shoff, (uint64_t)eh.e_shnum * sizeof(Elf64_Shdr)))
        return NIXL_ELF_NOT_ELF;

    size_t name_len = strlen(name);
    for (unsigned s = 0; s < eh.e_shnum; s++) {
        Elf64_Shdr sym;
        read_at(img, len, eh.e_shoff + (uint64_t)s * sizeof(Elf64_Shdr), &sym, sizeof(sym));
        if (sym.sh_type != SHT_DYNSYM)
            continue;
        Elf64_Shdr str;
        if (sym.sh_link >= eh.e_shnum || sym.sh_entsize != sizeof(Elf64_Sym) ||
            !in_bounds(len, sym.sh_offset, sym.sh_size) ||
            !read_at(img, len, eh.e_shoff + (uint64_t)sym.sh_link * sizeof(Elf64_Shdr), &str,
                     sizeof(str)) ||
            str.sh_type != SHT_STRTAB || !in_bounds(len, str.sh_offset, str.sh_size))
            return NIXL_ELF_NOT_ELF;
        uint64_t count = sym.sh_size / sizeof(Elf64_Sym);
        for (uint64_t i = 1; i < count; i++) { /* entry 0 is the null symbol */
            Elf64_Sym e;
            read_at(img, len, sym.sh_offset + i * sizeof(Elf64_Sym), &e, sizeof(e));
            unsigned bind = ELF64_ST_BIND(e.st_info);
            if (e.st_shndx == SHN_UNDEF || (bind != STB_GLOBAL && bind != STB_WEAK))
                continue;
            /* The name plus its terminating NUL must lie inside the string table. */
            if (e.st_name >= str.sh_size || name_len + 1 > str.sh_size - e.st_name)
                continue;
            const char *s_name = (const char *)img + str.sh_offset + e.st_name;
            if (!memcmp(s_name, name, name_len + 1))
                return NIXL_ELF_EXPORTED;
        }
        return NIXL_ELF_ABSENT;
    }
    return NIXL_ELF_ABSENT; /* no dynamic symbols: exports nothing */
}

nixl_elf_result_t nixl_elf_file_exports(const char *path, const char *const *names, size_t n,
                                        bool *exported)
{
    /* Read, not mapped: a file truncated while we look would raise SIGBUS through a mapping. */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NIXL_ELF_NOT_ELF;
    struct stat st;
    unsigned char *img = NULL;
    size_t len = 0;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
        (uint64_t)st.st_size <= ELF_MAX_FILE)
        img = malloc((size_t)st.st_size);
    if (img) {
        while (len < (size_t)st.st_size) {
            ssize_t got = read(fd, img + len, (size_t)st.st_size - len);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0)
                break;
            len += (size_t)got;
        }
    }
    close(fd);
    nixl_elf_result_t r = img ? NIXL_ELF_ABSENT : NIXL_ELF_NOT_ELF;
    for (size_t i = 0; i < n; i++) {
        nixl_elf_result_t one = img ? nixl_elf_exports(img, len, names[i]) : NIXL_ELF_NOT_ELF;
        exported[i] = one == NIXL_ELF_EXPORTED;
        if (one == NIXL_ELF_NOT_ELF)
            r = NIXL_ELF_NOT_ELF;
    }
    free(img);
    return r;
}
