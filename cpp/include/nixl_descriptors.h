/*
 * nixl_descriptors.h - descriptors and descriptor lists (reference signatures).
 *
 * nixlBasicDesc has the C API's nixl_desc_t layout (24 bytes: addr, len, devId), so a
 * nixl_xfer_dlist_t hands its element array to the C library as it is. Serialization is the C
 * library's (nixl_xfer_dlist_serialize, nixl_reg_dlist_serialize and the deserializers), which
 * writes the reference's bytes.
 */
#ifndef _NIXL_DESCRIPTORS_H
#define _NIXL_DESCRIPTORS_H

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "nixl_types.h"
#include "utils/serdes/serdes.h"

class nixlBasicDesc {
public:
    uintptr_t addr;
    size_t len;
    uint64_t devId;

    /* Leaves the fields uninitialised, as in the reference. */
    nixlBasicDesc() {}
    nixlBasicDesc(const uintptr_t &addr_, const size_t &len_, const uint64_t &dev_id)
        : addr(addr_), len(len_), devId(dev_id)
    {
    }
    /* From serialize()'s 24 bytes; any other size gives zeros. */
    nixlBasicDesc(const nixl_blob_t &str) : addr(0), len(0), devId(0)
    {
        if (str.size() == sizeof(nixlBasicDesc))
            std::memcpy(static_cast<void *>(this), str.data(), sizeof(nixlBasicDesc));
    }
    nixlBasicDesc(const nixlBasicDesc &) = default;
    nixlBasicDesc &operator=(const nixlBasicDesc &) = default;
    ~nixlBasicDesc() = default;

    bool operator<(const nixlBasicDesc &desc) const noexcept
    {
        if (devId != desc.devId)
            return devId < desc.devId;
        if (addr != desc.addr)
            return addr < desc.addr;
        return len < desc.len;
    }
    friend bool operator==(const nixlBasicDesc &lhs, const nixlBasicDesc &rhs)
    {
        return lhs.addr == rhs.addr && lhs.len == rhs.len && lhs.devId == rhs.devId;
    }
    friend bool operator!=(const nixlBasicDesc &lhs, const nixlBasicDesc &rhs) { return !(lhs == rhs); }

    bool covers(const nixlBasicDesc &query) const noexcept
    {
        return devId == query.devId && addr <= query.addr && addr + len >= query.addr + query.len;
    }
    bool overlaps(const nixlBasicDesc &query) const
    {
        return devId == query.devId && addr < query.addr + query.len && query.addr < addr + len;
    }

    nixl_blob_t serialize() const
    {
        return nixl_blob_t(reinterpret_cast<const char *>(this), sizeof(nixlBasicDesc));
    }
    /* The reference logs this line at INFO; here it goes to std::clog (docs/cpp.md). */
    void print(const std::string &suffix) const
    {
        std::clog << "Desc (" << addr << ", " << len << ") from devID " << devId << suffix << '\n';
    }
};

static_assert(sizeof(nixlBasicDesc) == sizeof(nixl_capi::nixl_desc_t) &&
                  offsetof(nixlBasicDesc, addr) == offsetof(nixl_capi::nixl_desc_t, addr) &&
                  offsetof(nixlBasicDesc, len) == offsetof(nixl_capi::nixl_desc_t, len) &&
                  offsetof(nixlBasicDesc, devId) == offsetof(nixl_capi::nixl_desc_t, dev_id) &&
                  std::is_standard_layout<nixlBasicDesc>::value &&
                  std::is_trivially_copyable<nixlBasicDesc>::value,
              "nixlBasicDesc is the C API's nixl_desc_t");

/* A registration descriptor: basic fields plus backend-specific bytes (a file path, a key). */
class nixlBlobDesc : public nixlBasicDesc {
public:
    nixl_blob_t metaInfo;

    using nixlBasicDesc::nixlBasicDesc;
    nixlBlobDesc(const uintptr_t &addr_, const size_t &len_, const uint64_t &dev_id,
                 const nixl_blob_t &meta_info)
        : nixlBasicDesc(addr_, len_, dev_id), metaInfo(meta_info)
    {
    }
    nixlBlobDesc(const nixlBasicDesc &desc, const nixl_blob_t &meta_info)
        : nixlBasicDesc(desc), metaInfo(meta_info)
    {
    }
    /* From serialize(): 24 bytes of basic fields, the rest is metaInfo; shorter gives zeros. */
    nixlBlobDesc(const nixl_blob_t &str) : nixlBasicDesc(0, 0, 0)
    {
        if (str.size() >= sizeof(nixlBasicDesc)) {
            std::memcpy(static_cast<void *>(static_cast<nixlBasicDesc *>(this)), str.data(),
                        sizeof(nixlBasicDesc));
            metaInfo = str.substr(sizeof(nixlBasicDesc));
        }
    }

    friend bool operator==(const nixlBlobDesc &lhs, const nixlBlobDesc &rhs)
    {
        return static_cast<const nixlBasicDesc &>(lhs) == static_cast<const nixlBasicDesc &>(rhs) &&
               lhs.metaInfo == rhs.metaInfo;
    }

    nixl_blob_t serialize() const { return nixlBasicDesc::serialize() + metaInfo; }
    void print(const std::string &suffix) const
    {
        nixlBasicDesc::print(", Metadata: " + metaInfo + suffix);
    }
};

/* A remote descriptor of a memory view: basic fields plus the owning agent's name. */
struct nixlRemoteDesc : public nixlBasicDesc {
    std::string remoteAgent;

    using nixlBasicDesc::nixlBasicDesc;
    nixlRemoteDesc(const uintptr_t addr_, const size_t len_, const uint64_t dev_id,
                   const std::string &remote_agent)
        : nixlBasicDesc(addr_, len_, dev_id), remoteAgent(remote_agent)
    {
    }
    nixlRemoteDesc(const nixlBasicDesc &desc, const std::string &remote_agent)
        : nixlBasicDesc(desc), remoteAgent(remote_agent)
    {
    }
    explicit nixlRemoteDesc(const nixl_blob_t &str) : nixlBasicDesc(0, 0, 0)
    {
        if (str.size() >= sizeof(nixlBasicDesc)) {
            std::memcpy(static_cast<void *>(static_cast<nixlBasicDesc *>(this)), str.data(),
                        sizeof(nixlBasicDesc));
            remoteAgent = str.substr(sizeof(nixlBasicDesc));
        }
    }

    nixl_blob_t serialize() const { return nixlBasicDesc::serialize() + remoteAgent; }
};

inline bool operator==(const nixlRemoteDesc &lhs, const nixlRemoteDesc &rhs)
{
    return static_cast<const nixlBasicDesc &>(lhs) == static_cast<const nixlBasicDesc &>(rhs) &&
           lhs.remoteAgent == rhs.remoteAgent;
}

namespace nixl_cpp {
/* A registration list as the C API's array: one allocation per call, none per descriptor (the
 * meta blobs are borrowed from the list). */
template<class List> std::vector<nixl_capi::nixl_reg_desc_t> reg_descs(const List &list)
{
    std::vector<nixl_capi::nixl_reg_desc_t> out;
    out.reserve(static_cast<size_t>(list.descCount()));
    for (const auto &d : list)
        out.push_back({d.addr, d.len, d.devId, d.metaInfo.data(), d.metaInfo.size()});
    return out;
}
} // namespace nixl_cpp

template<class T> class nixlDescList;
template<class Y> bool operator==(const nixlDescList<Y> &lhs, const nixlDescList<Y> &rhs);

template<class T> class nixlDescList {
protected:
    nixl_mem_t type;
    std::vector<T> descs;

public:
    nixlDescList(const nixl_mem_t &type_, const int &init_size = 0)
        : type(type_), descs(static_cast<size_t>(init_size > 0 ? init_size : 0))
    {
        static_assert(std::is_base_of<nixlBasicDesc, T>::value,
                      "nixlDescList elements derive from nixlBasicDesc");
    }

    /*
     * Read a list that nixlDescList::serialize (ours or the reference's) put into the container.
     * The records of the list are stepped over with the container's own reader to find where
     * the list ends; the C library decodes and checks those bytes. On any error the list is
     * empty. Remote lists are not serializable and come out empty.
     */
    nixlDescList(nixlSerDes *deserializer) : type(DRAM_SEG)
    {
        static_assert(std::is_base_of<nixlBasicDesc, T>::value,
                      "nixlDescList elements derive from nixlBasicDesc");
        if constexpr (!std::is_same<T, nixlRemoteDesc>::value)
            load(deserializer);
    }

    nixlDescList(const nixlDescList<T> &d_list) = default;
    nixlDescList &operator=(const nixlDescList<T> &d_list) = default;
    virtual ~nixlDescList() = default;

    inline nixl_mem_t getType() const { return type; }
    inline int descCount() const { return static_cast<int>(descs.size()); }
    bool isEmpty() const noexcept { return descs.empty(); }

    const T &operator[](size_t index) const { return descs[index]; }
    T &operator[](size_t index) { return descs[index]; }

    inline typename std::vector<T>::const_iterator begin() const { return descs.begin(); }
    inline typename std::vector<T>::const_iterator end() const { return descs.end(); }
    inline typename std::vector<T>::iterator begin() { return descs.begin(); }
    inline typename std::vector<T>::iterator end() { return descs.end(); }

    template<class Y> friend bool operator==(const nixlDescList<Y> &lhs, const nixlDescList<Y> &rhs);

    virtual void resize(const size_t &count) { descs.resize(count); }
    inline void reserve(size_t count) { descs.reserve(count); }
    inline void clear() { descs.clear(); }
    virtual void addDesc(const T &desc) { descs.push_back(desc); }
    template<class... Args> T &emplace(Args &&...args)
    {
        return descs.emplace_back(std::forward<Args>(args)...);
    }
    void remDesc(const int &index)
    {
        if (index < 0 || index >= descCount())
            throw std::out_of_range("Index is out of range");
        descs.erase(descs.begin() + index);
    }

    nixlDescList<nixlBasicDesc> trim() const
    {
        nixlDescList<nixlBasicDesc> out(type);
        out.reserve(descs.size());
        for (const auto &d : descs)
            out.addDesc(static_cast<const nixlBasicDesc &>(d));
        return out;
    }

    /* The first descriptor whose basic fields equal `query`, or NIXL_ERR_NOT_FOUND. */
    virtual int getIndex(const nixlBasicDesc &query) const
    {
        for (size_t i = 0; i < descs.size(); i++)
            if (static_cast<const nixlBasicDesc &>(descs[i]) == query)
                return static_cast<int>(i);
        return NIXL_ERR_NOT_FOUND;
    }

    /* Appends the reference's encoding (the C library writes it); remote lists cannot be. */
    nixl_status_t serialize(nixlSerDes *serializer) const
    {
        if constexpr (std::is_same<T, nixlRemoteDesc>::value) {
            (void)serializer;
            return NIXL_ERR_INVALID_PARAM;
        } else if constexpr (!std::is_same<T, nixlBlobDesc>::value &&
                             !std::is_same<T, nixlBasicDesc>::value) {
            return trim().serialize(serializer);
        } else {
            void *blob = nullptr;
            size_t len = 0;
            nixl_capi::nixl_status_t st;
            const auto ctype = static_cast<nixl_capi::nixl_mem_t>(type);
            if constexpr (std::is_same<T, nixlBlobDesc>::value) {
                auto c = nixl_cpp::reg_descs(*this);
                st = nixl_capi::nixl_reg_dlist_serialize(ctype, c.data(), c.size(), &blob, &len);
            } else {
                st = nixl_capi::nixl_xfer_dlist_serialize(
                    ctype, reinterpret_cast<const nixl_capi::nixl_desc_t *>(descs.data()),
                    descs.size(), &blob, &len);
            }
            if (st != nixl_capi::NIXL_SUCCESS)
                return static_cast<nixl_status_t>(st);
            nixl_cpp::c_ptr<void> hold(blob);
            serializer->appendContainer(blob, len);
            return NIXL_SUCCESS;
        }
    }

    void print() const { std::cout << to_string() << std::endl; }

    std::string to_string(bool compact = false) const
    {
        std::string s = "DescList of mem type " + std::to_string(static_cast<int>(type));
        if (compact) {
            std::map<size_t, size_t> lens;
            for (const auto &d : descs)
                lens[d.len]++;
            s += " count=" + std::to_string(descs.size()) + " content={";
            bool first = true;
            for (const auto &[l, n] : lens) {
                s += (first ? "" : ", ") + std::to_string(l) + ":" + std::to_string(n);
                first = false;
            }
            s += "}";
        } else {
            for (const auto &d : descs)
                d.print("");
        }
        return s;
    }

private:
    void load(nixlSerDes *sd)
    {
        const ssize_t start = sd->des_offset;
        const std::string kind = sd->getStr("nixlDList");
        const bool reg = kind == "nixlSDList";
        if (!reg && kind != "nixlBDList")
            return;
        uint32_t t;
        uint64_t n;
        if (sd->getBuf("t", &t, sizeof(t)) != NIXL_SUCCESS ||
            sd->getBuf("n", &n, sizeof(n)) != NIXL_SUCCESS)
            return;
        type = static_cast<nixl_mem_t>(t);
        for (uint64_t i = 0; i < (reg ? n : uint64_t(n > 0)); i++)
            if (!sd->skip(""))
                return;
        const std::string bytes = sd->sliceFrom(start);
        constexpr bool blobs = std::is_same<T, nixlBlobDesc>::value;
        using c_desc = std::conditional_t<blobs, nixl_capi::nixl_reg_desc_t, nixl_capi::nixl_desc_t>;
        nixl_capi::nixl_mem_t ctype;
        c_desc *c = nullptr;
        size_t count = 0;
        nixl_capi::nixl_status_t s;
        if constexpr (blobs)
            s = nixl_capi::nixl_reg_dlist_deserialize(bytes.data(), bytes.size(), &ctype, &c, &count);
        else
            s = nixl_capi::nixl_xfer_dlist_deserialize(bytes.data(), bytes.size(), &ctype, &c, &count);
        if (s != nixl_capi::NIXL_SUCCESS) {
            nixl_cpp::log_error("nixlDescList: " + nixl_cpp::last_error());
            return;
        }
        nixl_cpp::c_ptr<c_desc> hold(c);
        descs.reserve(count);
        for (size_t i = 0; i < count; i++) {
            if constexpr (blobs)
                descs.emplace_back(c[i].addr, c[i].len, c[i].dev_id,
                                   nixl_blob_t(static_cast<const char *>(c[i].meta), c[i].meta_len));
            else
                descs.emplace_back(c[i].addr, c[i].len, c[i].dev_id);
        }
        type = static_cast<nixl_mem_t>(ctype);
    }
};

/* Same memory type, same count, equal elements (metaInfo and remoteAgent included, in C++17 as
 * in C++20). */
template<class Y> bool operator==(const nixlDescList<Y> &lhs, const nixlDescList<Y> &rhs)
{
    if (lhs.type != rhs.type || lhs.descs.size() != rhs.descs.size())
        return false;
    for (size_t i = 0; i < lhs.descs.size(); i++)
        if (!(lhs.descs[i] == rhs.descs[i]))
            return false;
    return true;
}

using nixl_xfer_dlist_t = nixlDescList<nixlBasicDesc>;
using nixl_local_dlist_t = nixlDescList<nixlBasicDesc>;
using nixl_reg_dlist_t = nixlDescList<nixlBlobDesc>;
using nixl_remote_dlist_t = nixlDescList<nixlRemoteDesc>;

#endif /* _NIXL_DESCRIPTORS_H */
