/*
 * test_descriptors.cpp - descriptors, descriptor lists, nixlSerDes, the types and constants of
 * the C++ API, and the serialized lists against the reference's golden bytes (tests/data).
 */
#include <gtest/gtest.h>

#include "nixl.h"
#include "nixl_descriptors.h"
#include "nixl_types.h"
#include <utils/common/nixl_time.h>
#include <utils/serdes/serdes.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

/* The facts clients rely on (CPP-API.md section 0). */
static_assert(std::is_same<nixl_blob_t, std::string>::value);
static_assert(std::is_same<nixl_backend_t, std::string>::value);
static_assert(std::is_same<nixl_b_params_t, std::unordered_map<std::string, std::string>>::value);
static_assert(std::is_same<nixl_query_resp_t, std::optional<nixl_b_params_t>>::value);
static_assert(std::is_same<nixlMemViewH, void *>::value);
static_assert(std::is_same<nixl_local_dlist_t, nixl_xfer_dlist_t>::value);
static_assert(std::is_same<decltype(nixl_null_agent), const std::string>::value);
static_assert(std::is_aggregate<nixl_opt_args_t>::value);
static_assert(!std::is_aggregate<nixlAgentConfig>::value);
static_assert(!std::is_convertible<bool, nixlAgentConfig>::value);
static_assert(!std::is_copy_constructible<nixlAgent>::value && !std::is_move_constructible<nixlAgent>::value);
static_assert(std::is_convertible<nixl_mem_t, nixl_xfer_dlist_t>::value);
static_assert(std::is_convertible<nixlSerDes *, nixl_reg_dlist_t>::value);
static_assert(std::is_convertible<nixl_blob_t, nixlBasicDesc>::value);
static_assert(std::is_convertible<nixl_blob_t, nixlBlobDesc>::value);
static_assert(!std::is_convertible<nixl_blob_t, nixlRemoteDesc>::value);
static_assert(sizeof(nixlBasicDesc) == 24 && std::is_trivially_copyable<nixlBasicDesc>::value);
static_assert(std::is_polymorphic<nixl_xfer_dlist_t>::value);
static_assert(std::is_same<decltype(std::declval<nixl_xfer_dlist_t>().descCount()), int>::value);

/* a named, unscoped enum usable as a template parameter kind (error_handling.cpp) */
template<enum nixl_xfer_op_t op> struct op_tag {
    static constexpr nixl_xfer_op_t value = op;
};
static_assert(op_tag<NIXL_WRITE>::value == 1);

TEST(Types, EnumsAndConstants)
{
    EXPECT_EQ(NIXL_IN_PROG, 1);
    EXPECT_EQ(NIXL_ERR_NO_TELEMETRY, -12);
    EXPECT_TRUE(0 != NIXL_ERR_BACKEND);
    EXPECT_EQ(FILE_SEG, 4);
    EXPECT_EQ(static_cast<int>(nixl_thread_sync_t::NIXL_THREAD_SYNC_RW), 2);
    EXPECT_EQ(nixl_thread_sync_t::NIXL_THREAD_SYNC_DEFAULT, nixl_thread_sync_t::NIXL_THREAD_SYNC_NONE);
    EXPECT_EQ(static_cast<int>(nixl_cost_t::ANALYTICAL_BACKEND), 0);
    EXPECT_EQ(default_comm_port, 8888);
    EXPECT_EQ(default_metadata_label, "metadata");
    EXPECT_EQ(nixl_null_agent, "NULL_AGENT");
    EXPECT_EQ(std::string(NIXL_INIT_AGENT), "");
    EXPECT_EQ(sizeof(nixl_mem_t), 4u);
}

TEST(Types, EnumStrings)
{
    EXPECT_EQ(nixlEnumStrings::memTypeStr(DRAM_SEG), "DRAM_SEG");
    EXPECT_EQ(nixlEnumStrings::memTypeStr(FILE_SEG), "FILE_SEG");
    EXPECT_EQ(nixlEnumStrings::memTypeStr(static_cast<nixl_mem_t>(9)), "BAD_SEG");
    EXPECT_EQ(nixlEnumStrings::xferOpStr(NIXL_READ), "READ");
    EXPECT_EQ(nixlEnumStrings::xferOpStr(static_cast<nixl_xfer_op_t>(7)), "BAD_OP");
    EXPECT_EQ(nixlEnumStrings::statusStr(NIXL_ERR_NOT_FOUND), "NIXL_ERR_NOT_FOUND");
    EXPECT_EQ(nixlEnumStrings::statusStr(static_cast<nixl_status_t>(-99)), "BAD_STATUS");
}

TEST(Types, OptArgsAndConfig)
{
    nixl_opt_args_t o;
    EXPECT_TRUE(o.backends.empty());
    EXPECT_FALSE(o.notif.has_value());
    EXPECT_FALSE(o.hasNotif || o.skipDescMerge || o.includeConnInfo);
    EXPECT_EQ(o.port, 8888);
    nixlBackendH *h = reinterpret_cast<nixlBackendH *>(&o);
#if __cplusplus >= 202002L
    nixl_opt_args_t d = {.backends = {h}};
    d = {.backends = {h, h}};
    EXPECT_EQ(d.backends.size(), 2u);
#endif
    o.backends = {h};
    nixl_opt_args_t moved = std::move(o);
    EXPECT_EQ(moved.backends.front(), h);

    nixlAgentConfig c;
    EXPECT_FALSE(c.useProgThread);
    EXPECT_FALSE(c.useListenThread);
    EXPECT_EQ(c.listenPort, 8888);
    EXPECT_EQ(c.syncMode, nixl_thread_sync_t::NIXL_THREAD_SYNC_NONE);
    EXPECT_EQ(c.lthrDelay, 100000u);
    EXPECT_EQ(c.etcdWatchTimeout, std::chrono::seconds(5));
    nixlAgentConfig e(true, true, 1234, nixl_thread_sync_t::NIXL_THREAD_SYNC_RW, 4, 5, 6, true,
                      std::chrono::microseconds(7));
    EXPECT_TRUE(e.useProgThread && e.useListenThread && e.captureTelemetry);
    EXPECT_EQ(e.listenPort, 1234);
    EXPECT_EQ(e.syncMode, nixl_thread_sync_t::NIXL_THREAD_SYNC_RW);
    EXPECT_EQ(e.pthrDelay, 5u);
    EXPECT_EQ(e.lthrDelay, 6u);
    EXPECT_EQ(e.etcdWatchTimeout.count(), 7);
    EXPECT_EQ(nixlAgentConfig(true).listenPort, nixlAgentConfig::kDefaultListenPort);
}

TEST(Types, Time)
{
    nixlTime::us_t a = nixlTime::getUs();
    EXPECT_GE(nixlTime::getNs(), a);
    EXPECT_LE(nixlTime::getSec(), nixlTime::getMs());
}

TEST(Descriptors, Basic)
{
    nixlBasicDesc a(0x1000, 100, 2), b{0x1000, 100, 2}, c(0x1010, 10, 2), d(0x1000, 100, 3);
    EXPECT_TRUE(a == b);
    EXPECT_FALSE(a != b);
    EXPECT_TRUE(a != d);
    EXPECT_TRUE(a < d);  /* devId first */
    EXPECT_TRUE(a < c);  /* then addr */
    EXPECT_TRUE(nixlBasicDesc(0x1000, 10, 2) < a); /* then len */
    EXPECT_TRUE(a.covers(c));
    EXPECT_FALSE(c.covers(a));
    EXPECT_FALSE(a.covers(d));
    EXPECT_TRUE(a.overlaps(c));
    EXPECT_FALSE(a.overlaps(nixlBasicDesc(0x1064, 10, 2)));
    EXPECT_FALSE(a.overlaps(d));
    nixl_blob_t s = a.serialize();
    ASSERT_EQ(s.size(), 24u);
    nixlBasicDesc back = s; /* implicit from a blob */
    EXPECT_EQ(back, a);
    nixlBasicDesc zero(std::string("short"));
    EXPECT_EQ(zero, nixlBasicDesc(0, 0, 0));
    testing::internal::CaptureStderr();
    a.print(" suffix");
    EXPECT_NE(testing::internal::GetCapturedStderr().find("Desc (4096, 100) from devID 2 suffix"),
              std::string::npos);
}

TEST(Descriptors, BlobAndRemote)
{
    nixlBlobDesc b(0x10, 20, 1, std::string("path\0x", 6));
    nixlBlobDesc same(nixlBasicDesc(0x10, 20, 1), std::string("path\0x", 6));
    nixlBlobDesc other(0x10, 20, 1, "path");
    EXPECT_TRUE(b == same);
    EXPECT_FALSE(b == other);
    EXPECT_TRUE(static_cast<const nixlBasicDesc &>(b) == other);
    nixlBlobDesc three(0x10, 20, 1); /* the inherited 3-argument constructor */
    EXPECT_TRUE(three.metaInfo.empty());
    nixlBlobDesc dflt;
    dflt.addr = 1, dflt.len = 2, dflt.devId = 3;
    EXPECT_TRUE(dflt.metaInfo.empty());
    nixl_blob_t s = b.serialize();
    EXPECT_EQ(s.size(), 30u);
    nixlBlobDesc back = s;
    EXPECT_TRUE(back == b);
    nixlBlobDesc exact(s.substr(0, 24));
    EXPECT_TRUE(exact.metaInfo.empty());
    EXPECT_EQ(exact.addr, 0x10u);
    EXPECT_EQ(nixlBlobDesc(std::string("tiny")).len, 0u);

    nixlRemoteDesc r{0x10, 20, 1, "agent"};
    nixlRemoteDesc r2(nixlBasicDesc(0x10, 20, 1), "agent");
    EXPECT_TRUE(r == r2);
    EXPECT_FALSE(r == nixlRemoteDesc(0x10, 20, 1, nixl_null_agent));
    nixlRemoteDesc rb(r.serialize());
    EXPECT_TRUE(rb == r);
    EXPECT_EQ(nixlRemoteDesc(std::string("x")).remoteAgent, "");
}

TEST(DescList, AddRemoveIndex)
{
    nixl_reg_dlist_t l(DRAM_SEG);
    EXPECT_TRUE(l.isEmpty());
    EXPECT_EQ(l.getType(), DRAM_SEG);
    l.addDesc(nixlBlobDesc(0x1000, 10, 0, "a"));
    l.addDesc(nixlBlobDesc(0x2000, 20, 0, "b"));
    l.emplace(0x3000, 30, 0, "c").metaInfo += "!";
    ASSERT_EQ(l.descCount(), 3);
    EXPECT_EQ(l[2].metaInfo, "c!");
    l[0].metaInfo = "A";
    const nixl_reg_dlist_t &cl = l;
    std::string metas;
    for (const auto &d : cl)
        metas += d.metaInfo;
    EXPECT_EQ(metas, "Abc!");
    EXPECT_EQ(l.getIndex(nixlBasicDesc(0x2000, 20, 0)), 1);
    EXPECT_EQ(l.getIndex(nixlBasicDesc(0x2000, 21, 0)), NIXL_ERR_NOT_FOUND);
    l.remDesc(1);
    EXPECT_EQ(l.descCount(), 2);
    EXPECT_THROW(l.remDesc(2), std::out_of_range);
    EXPECT_THROW(l.remDesc(-1), std::out_of_range);
    l.resize(5);
    EXPECT_EQ(l.descCount(), 5);
    l.reserve(10);
    l.clear();
    EXPECT_TRUE(l.isEmpty());
    nixl_reg_dlist_t sized(FILE_SEG, 3);
    EXPECT_EQ(sized.descCount(), 3);
    EXPECT_EQ(sized.getType(), FILE_SEG);
}

TEST(DescList, TrimCompareSortCopy)
{
    nixl_reg_dlist_t r(VRAM_SEG);
    r.addDesc(nixlBlobDesc(0x3000, 30, 1, "z"));
    r.addDesc(nixlBlobDesc(0x1000, 10, 1, "y"));
    r.addDesc(nixlBlobDesc(0x2000, 20, 0, "x"));
    nixl_xfer_dlist_t t = r.trim();
    ASSERT_EQ(t.descCount(), 3);
    EXPECT_EQ(t.getType(), VRAM_SEG);
    EXPECT_EQ(t[1], nixlBasicDesc(0x1000, 10, 1));

    nixl_reg_dlist_t r2 = r;
    EXPECT_TRUE(r2 == r);
    r2[0].metaInfo = "other"; /* metaInfo counts, in C++17 as in C++20 */
    EXPECT_FALSE(r2 == r);
    nixl_reg_dlist_t r3(DRAM_SEG);
    r3 = r;
    EXPECT_TRUE(r3 == r);
    r3 = nixl_reg_dlist_t(OBJ_SEG);
    EXPECT_FALSE(r3 == r);
    nixl_xfer_dlist_t differentType(DRAM_SEG);
    for (const auto &d : t)
        differentType.addDesc(d);
    EXPECT_FALSE(differentType == t);

    /* Lists keep insertion order; callers sort with operator< (devId, addr, len). */
    std::sort(t.begin(), t.end());
    EXPECT_EQ(t[0], nixlBasicDesc(0x2000, 20, 0));
    EXPECT_EQ(t[1], nixlBasicDesc(0x1000, 10, 1));
    EXPECT_EQ(t[2], nixlBasicDesc(0x3000, 30, 1));

    nixl_remote_dlist_t rem(DRAM_SEG);
    rem.addDesc(nixlRemoteDesc(1, 2, 3, "peer"));
    nixl_remote_dlist_t rem2 = rem;
    EXPECT_TRUE(rem == rem2);
    rem2[0].remoteAgent = nixl_null_agent;
    EXPECT_FALSE(rem == rem2);
    EXPECT_EQ(rem.trim()[0], nixlBasicDesc(1, 2, 3));
}

TEST(DescList, ToStringAndPrint)
{
    nixl_xfer_dlist_t t(FILE_SEG);
    t.addDesc(nixlBasicDesc(0, 4096, 1));
    t.addDesc(nixlBasicDesc(4096, 4096, 1));
    t.addDesc(nixlBasicDesc(8192, 100, 1));
    EXPECT_EQ(t.to_string(true), "DescList of mem type 4 count=3 content={100:1, 4096:2}");
    testing::internal::CaptureStdout();
    testing::internal::CaptureStderr();
    t.print();
    std::string out = testing::internal::GetCapturedStdout();
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(out, "DescList of mem type 4\n");
    EXPECT_NE(err.find("Desc (8192, 100) from devID 1"), std::string::npos);
}

TEST(SerDes, Records)
{
    nixlSerDes s;
    EXPECT_EQ(s.exportStr(), "nixlSerDes|");
    EXPECT_EQ(s.addStr("name", "agent"), NIXL_SUCCESS);
    uint32_t v = 0xdeadbeef;
    EXPECT_EQ(s.addBuf("v", &v, sizeof(v)), NIXL_SUCCESS);
    EXPECT_EQ(s.addStr("msg", ""), NIXL_SUCCESS);
    std::string bytes = s.exportStr();
    EXPECT_EQ(bytes.size(), 11u + (4 + 8 + 5 + 1) + (1 + 8 + 4 + 1) + (3 + 8 + 0 + 1));

    nixlSerDes d;
    EXPECT_EQ(d.importStr(bytes), NIXL_SUCCESS);
    EXPECT_EQ(d.getStr("name"), "agent");
    testing::internal::CaptureStderr();
    EXPECT_EQ(d.getBufLen("v"), 4);
    EXPECT_EQ(d.getBufLen("x"), -1);
    uint64_t wrong;
    EXPECT_EQ(d.getBuf("v", &wrong, sizeof(wrong)), NIXL_ERR_MISMATCH);
    uint32_t w = 0;
    EXPECT_EQ(d.getBuf("v", &w, sizeof(w)), NIXL_SUCCESS);
    EXPECT_EQ(w, v);
    EXPECT_EQ(d.getStr("msg"), "");
    EXPECT_EQ(d.getStr("more"), ""); /* past the end */
    nixlSerDes bad;
    EXPECT_EQ(bad.importStr("notSerDes|"), NIXL_ERR_MISMATCH);
    EXPECT_NE(testing::internal::GetCapturedStderr().find("Deserialization failed, missing nixlSerDes tag"),
              std::string::npos);

    char raw[3] = {'a', '\0', 'b'};
    std::string str = nixlSerDes::_bytesToString(raw, 3);
    EXPECT_EQ(str.size(), 3u);
    char back[3];
    nixlSerDes::_stringToBytes(back, str, 3);
    EXPECT_EQ(std::string(back, 3), str);
}

/* The serdes container of a Python pickle (tests/data), as the reference wrote it. */
static std::string pickle_container(const std::string &name)
{
    const char *dir = std::getenv("NIXL_TEST_DATA");
    std::ifstream f(std::string(dir ? dir : "tests/data") + "/" + name, std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    size_t at = all.find("nixlSerDes|");
    if (at == std::string::npos || at < 2)
        return "";
    size_t len;
    auto u = [&](size_t i) { return static_cast<size_t>(static_cast<unsigned char>(all[i])); };
    if (all[at - 2] == 'C')
        len = u(at - 1);
    else if (at >= 5 && all[at - 5] == 'B')
        len = u(at - 4) | u(at - 3) << 8 | u(at - 2) << 16 | u(at - 1) << 24;
    else
        return "";
    return all.substr(at, len);
}

static const uintptr_t REG_A = 0x7fcffe800000, REG_B = 0x7fcffe700000;

/* `l` serializes to the reference's bytes, and those bytes read back to `l`. */
template<class List> void expect_golden(const List &l, const char *pickle)
{
    const std::string golden = pickle_container(pickle);
    ASSERT_FALSE(golden.empty());
    nixlSerDes s;
    ASSERT_EQ(l.serialize(&s), NIXL_SUCCESS);
    EXPECT_EQ(s.exportStr(), golden);
    nixlSerDes d;
    ASSERT_EQ(d.importStr(golden), NIXL_SUCCESS);
    List back(&d);
    EXPECT_TRUE(back == l);
}

TEST(SerDes, XferListGoldenBytes)
{
    nixl_xfer_dlist_t l(DRAM_SEG);
    l.addDesc(nixlBasicDesc(REG_A, 4096, 0));
    l.addDesc(nixlBasicDesc(REG_A + 4096, 100, 0));
    l.addDesc(nixlBasicDesc(REG_A + 65536, 8192, 0));
    expect_golden(l, "xfer_dlist_3.pickle");
}

TEST(SerDes, RegListGoldenBytes)
{
    nixl_reg_dlist_t l(DRAM_SEG);
    l.addDesc(nixlBlobDesc(REG_B, 4096, 0, "x"));
    l.addDesc(nixlBlobDesc(REG_B + 8192, 4096, 0, "meta-two"));
    expect_golden(l, "reg_dlist_2.pickle");
}

TEST(SerDes, RoundTripsInOneContainer)
{
    nixl_reg_dlist_t reg(FILE_SEG);
    reg.addDesc(nixlBlobDesc(0, 0, 7, std::string("rw:/tmp/f\0\x01", 12)));
    nixl_xfer_dlist_t empty(OBJ_SEG), xfer(VRAM_SEG);
    for (int i = 0; i < 100; i++)
        xfer.addDesc(nixlBasicDesc(0x1000u * static_cast<unsigned>(i), 64, 1));
    nixlSerDes s;
    ASSERT_EQ(s.addStr("before", "x"), NIXL_SUCCESS);
    ASSERT_EQ(reg.serialize(&s), NIXL_SUCCESS);
    ASSERT_EQ(empty.serialize(&s), NIXL_SUCCESS);
    ASSERT_EQ(xfer.serialize(&s), NIXL_SUCCESS);
    ASSERT_EQ(s.addStr("after", "y"), NIXL_SUCCESS);

    nixlSerDes d;
    ASSERT_EQ(d.importStr(s.exportStr()), NIXL_SUCCESS);
    EXPECT_EQ(d.getStr("before"), "x");
    nixl_reg_dlist_t reg2(&d);
    nixl_xfer_dlist_t empty2(&d), xfer2(&d);
    EXPECT_EQ(d.getStr("after"), "y");
    EXPECT_TRUE(reg2 == reg);
    EXPECT_TRUE(empty2 == empty);
    EXPECT_EQ(empty2.getType(), OBJ_SEG);
    EXPECT_TRUE(xfer2 == xfer);

    /* nixlbench's way: serialize, export, import into the same object, read back */
    nixlSerDes sd;
    xfer.serialize(&sd);
    std::string str = sd.exportStr();
    sd.importStr(str);
    nixl_xfer_dlist_t remote(&sd);
    EXPECT_TRUE(remote == xfer);
}

TEST(SerDes, Refusals)
{
    nixl_remote_dlist_t rem(DRAM_SEG);
    rem.addDesc(nixlRemoteDesc(1, 2, 3, "peer"));
    nixlSerDes s;
    EXPECT_EQ(rem.serialize(&s), NIXL_ERR_INVALID_PARAM);
    EXPECT_EQ(s.exportStr(), "nixlSerDes|");

    /* a registration list is not a transfer list, and garbage is nothing: empty lists */
    nixl_reg_dlist_t reg(DRAM_SEG);
    reg.addDesc(nixlBlobDesc(1, 2, 0, "m"));
    reg.serialize(&s);
    testing::internal::CaptureStderr();
    nixlSerDes d;
    d.importStr(s.exportStr());
    nixl_xfer_dlist_t wrong(&d);
    EXPECT_TRUE(wrong.isEmpty());
    nixlSerDes g;
    g.importStr(std::string("nixlSerDes|garbage"));
    nixl_reg_dlist_t none(&g);
    EXPECT_TRUE(none.isEmpty());
    testing::internal::GetCapturedStderr();
    nixlSerDes r;
    r.importStr(s.exportStr());
    nixl_remote_dlist_t never(&r);
    EXPECT_TRUE(never.isEmpty());
}
