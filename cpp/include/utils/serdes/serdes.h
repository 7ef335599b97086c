/*
 * serdes.h - nixlSerDes, the reference's tagged byte container (NIXL-SEMANTICS 5.8): the header
 * "nixlSerDes|", then records of tag bytes, an 8-byte host-endian length, the payload and '|'.
 *
 * The C API has no generic container (it serializes whole descriptor lists and metadata), so
 * this class is the C++ layer's own: framing only. Descriptor lists put into it or read from it
 * are encoded and decoded by the C library (nixl_xfer_dlist_serialize and friends), see
 * nixlDescList in nixl_descriptors.h.
 */
#ifndef NIXL_SRC_UTILS_SERDES_SERDES_H
#define NIXL_SRC_UTILS_SERDES_SERDES_H

#include <sys/types.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "nixl_types.h"

template<class T> class nixlDescList;

class nixlSerDes {
public:
    nixlSerDes() : workingStr(magic()), des_offset(static_cast<ssize_t>(magic().size())) {}

    nixl_status_t addStr(const std::string &tag, const std::string &str)
    {
        return addBuf(tag, str.data(), static_cast<ssize_t>(str.size()));
    }

    /* The next record's payload if its tag starts with `tag`; "" (and an error line) if not. */
    std::string getStr(const std::string &tag)
    {
        size_t at, len;
        if (!peek(tag, at, len))
            return "";
        std::string out = workingStr.substr(at, len);
        des_offset = static_cast<ssize_t>(at + len + 1);
        return out;
    }

    nixl_status_t addBuf(const std::string &tag, const void *buf, ssize_t len)
    {
        const size_t n = len > 0 ? static_cast<size_t>(len) : 0;
        workingStr.reserve(workingStr.size() + tag.size() + sizeof(size_t) + n + 1);
        workingStr += tag;
        workingStr.append(reinterpret_cast<const char *>(&n), sizeof(n));
        if (n)
            workingStr.append(static_cast<const char *>(buf), n);
        workingStr += '|';
        return NIXL_SUCCESS;
    }

    /* The length of the next record's payload, or -1 if its tag does not match. */
    ssize_t getBufLen(const std::string &tag) const
    {
        size_t at, len;
        return peek(tag, at, len) ? static_cast<ssize_t>(len) : -1;
    }

    nixl_status_t getBuf(const std::string &tag, void *buf, ssize_t len)
    {
        size_t at, n;
        if (!peek(tag, at, n))
            return NIXL_ERR_MISMATCH;
        if (len < 0 || n != static_cast<size_t>(len)) {
            nixl_cpp::log_error("nixlSerDes: buffer '" + tag + "' has " + std::to_string(n) +
                                " bytes, " + std::to_string(len) + " expected");
            return NIXL_ERR_MISMATCH;
        }
        if (n)
            std::memcpy(buf, workingStr.data() + at, n);
        des_offset = static_cast<ssize_t>(at + n + 1);
        return NIXL_SUCCESS;
    }

    std::string exportStr() const { return workingStr; }

    nixl_status_t importStr(const std::string &sdbuf)
    {
        if (sdbuf.compare(0, magic().size(), magic()) != 0) {
            nixl_cpp::log_error("Deserialization failed, missing nixlSerDes tag");
            return NIXL_ERR_MISMATCH;
        }
        workingStr = sdbuf;
        des_offset = static_cast<ssize_t>(magic().size());
        return NIXL_SUCCESS;
    }

    static std::string _bytesToString(const void *buf, ssize_t size)
    {
        return std::string(static_cast<const char *>(buf), size > 0 ? static_cast<size_t>(size) : 0);
    }

    static void _stringToBytes(void *fill_buf, const std::string &s, ssize_t size)
    {
        if (size > 0)
            std::memcpy(fill_buf, s.data(), std::min(s.size(), static_cast<size_t>(size)));
    }

private:
    template<class T> friend class nixlDescList;

    static const std::string &magic()
    {
        static const std::string m = "nixlSerDes|";
        return m;
    }

    /* The record at the cursor: its payload starts at `at` and is `len` bytes long. */
    bool peek(const std::string &tag, size_t &at, size_t &len) const
    {
        const size_t off = static_cast<size_t>(des_offset);
        const size_t size = workingStr.size();
        if (off > size || size - off < tag.size() + sizeof(size_t) ||
            workingStr.compare(off, tag.size(), tag) != 0) {
            nixl_cpp::log_error("nixlSerDes: no record '" + tag + "' at offset " + std::to_string(off));
            return false;
        }
        std::memcpy(&len, workingStr.data() + off + tag.size(), sizeof(len));
        at = off + tag.size() + sizeof(len);
        if (len >= size - at || workingStr[at + len] != '|') {
            nixl_cpp::log_error("nixlSerDes: record '" + tag + "' at offset " + std::to_string(off) +
                                " is truncated");
            return false;
        }
        return true;
    }

    /* For nixlDescList: step over the next record. */
    bool skip(const std::string &tag)
    {
        size_t at, len;
        if (!peek(tag, at, len))
            return false;
        des_offset = static_cast<ssize_t>(at + len + 1);
        return true;
    }

    /* For nixlDescList: the bytes from `from` to the cursor, as a container of their own. */
    std::string sliceFrom(ssize_t from) const
    {
        return magic() + workingStr.substr(static_cast<size_t>(from),
                                           static_cast<size_t>(des_offset - from));
    }

    /* For nixlDescList: the records of a container the C library wrote, appended. */
    void appendContainer(const void *blob, size_t len)
    {
        if (len > magic().size())
            workingStr.append(static_cast<const char *>(blob) + magic().size(), len - magic().size());
    }

    std::string workingStr;
    ssize_t des_offset;
};

#endif /* NIXL_SRC_UTILS_SERDES_SERDES_H */
