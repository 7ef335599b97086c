/*
 * test_config.c - string conversions, option lookup (environment, NIXL_CONFIG_FILE,
 * $HOME/.nixl.cfg) and the TOML reader, with real files in a temporary directory.
 */
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "error.h"
#include "toml.h"
#include "parse.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static char tmpdir[PATH_MAX];
static char *saved_home;
static unsigned file_seq;

/* Every variable a test may set, cleared before each test. */
static const char *const test_vars[] = {
    "NIXL_TEST_STR", "NIXL_TEST_BOOL", "NIXL_TEST_U64", "NIXL_TEST_I64", "NIXL_TEST_WHERE",
};

static void write_text(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len)
        assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Write `text` to a new file in tmpdir and return its path (static storage, per call). */
static const char *new_file(const char *text)
{
    static char paths[8][PATH_MAX];
    char *path = paths[file_seq % 8];
    snprintf(path, PATH_MAX, "%s/cfg-%u.toml", tmpdir, file_seq++);
    write_text(path, text, strlen(text));
    return path;
}

/* Point NIXL_CONFIG_FILE at a new file holding `text`, and forget the loaded one. */
static const char *use_config(const char *text)
{
    const char *path = new_file(text);
    assert_int_equal(setenv("NIXL_CONFIG_FILE", path, 1), 0);
    nixl_config_reset();
    return path;
}

static void assert_error_contains(const char *needle)
{
    const char *err = nixl_last_error();
    if (!strstr(err, needle))
        fail_msg("last error \"%s\" does not contain \"%s\"", err, needle);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "%s/nixl-config-XXXXXX",
             getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir))
        return -1;
    const char *home = getenv("HOME");
    saved_home = home ? strdup(home) : NULL;
    return 0;
}

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char path[PATH_MAX * 2];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (unlink(path) != 0)
            remove_tree(path);
    }
    closedir(d);
    rmdir(dir);
}

static int group_teardown(void **state)
{
    (void)state;
    remove_tree(tmpdir);
    if (saved_home)
        setenv("HOME", saved_home, 1);
    free(saved_home);
    nixl_config_reset();
    return 0;
}

/* Each test starts with no test variables, no file and nothing loaded. */
static int test_setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(test_vars); i++)
        unsetenv(test_vars[i]);
    setenv("NIXL_CONFIG_FILE", "", 1);
    nixl_config_reset();
    nixl_err_clear();
    return 0;
}

/* ----- string conversions ----- */

typedef struct {
    const char *s;
    bool ok;
    bool value;
} bool_case_t;

static const bool_case_t bool_cases[] = {
    {"y", true, true},        {"Y", true, true},         {"yes", true, true},
    {"YeS", true, true},      {"on", true, true},        {"ON", true, true},
    {"1", true, true},        {"true", true, true},      {"TRUE", true, true},
    {"enable", true, true},   {"Enable", true, true},    {"n", true, false},
    {"N", true, false},       {"no", true, false},       {"NO", true, false},
    {"off", true, false},     {"Off", true, false},      {"0", true, false},
    {"false", true, false},   {"False", true, false},    {"disable", true, false},
    {"DISABLE", true, false}, {"", false, false},        {" yes", false, false},
    {"yes ", false, false},   {"2", false, false},       {"t", false, false},
    {"f", false, false},      {"ye", false, false},      {"yess", false, false},
    {"enabled", false, false}, {"disabled", false, false}, {"tru", false, false},
    {"01", false, false},     {"+1", false, false},      {"nope", false, false},
    {"o", false, false},      {"yes\n", false, false},   {"\xc3\xbf", false, false},
};

static void test_parse_bool(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(bool_cases); i++) {
        const bool_case_t *c = &bool_cases[i];
        bool out = !c->value;
        bool ok = nixl_parse_bool(c->s, &out);
        if (ok != c->ok)
            fail_msg("nixl_parse_bool(\"%s\") returned %d", c->s, ok);
        if (ok && out != c->value)
            fail_msg("nixl_parse_bool(\"%s\") gave %d", c->s, out);
    }
    bool out = true;
    assert_false(nixl_parse_bool(NULL, &out));
    assert_true(out);
}

typedef struct {
    const char *s;
    bool ok;
    uint64_t value;
} u64_case_t;

static const u64_case_t u64_cases[] = {
    {"0", true, 0},
    {"1", true, 1},
    {"42", true, 42},
    {"1000", true, 1000},
    {"18446744073709551615", true, UINT64_MAX},
    {"18446744073709551614", true, UINT64_MAX - 1},
    {"0x0", true, 0},
    {"0x1", true, 1},
    {"0xff", true, 255},
    {"0xFF", true, 255},
    {"0xaBcD", true, 0xabcd},
    {"0X10", true, 16},
    {"0x00ff", true, 255},
    {"0xffffffffffffffff", true, UINT64_MAX},
    {"0x0000000000000000ffffffffffffffff", true, UINT64_MAX},
    {"", false, 0},
    {"-1", false, 0},
    {"-0", false, 0},
    {"+1", false, 0},
    {" 1", false, 0},
    {"1 ", false, 0},
    {"\t1", false, 0},
    {"1\n", false, 0},
    {"01", false, 0},
    {"00", false, 0},
    {"007", false, 0},
    {"0x", false, 0},
    {"0X", false, 0},
    {"0xg", false, 0},
    {"0x1g", false, 0},
    {"0x 1", false, 0},
    {"0x-1", false, 0},
    {"0x+1", false, 0},
    {"x1", false, 0},
    {"0b1", false, 0},
    {"0o7", false, 0},
    {"1.0", false, 0},
    {"1e3", false, 0},
    {"1_000", false, 0},
    {"1,000", false, 0},
    {"18446744073709551616", false, 0},
    {"18446744073709551620", false, 0},
    {"99999999999999999999", false, 0},
    {"0x10000000000000000", false, 0},
    {"0x1ffffffffffffffff", false, 0},
    {"\xd9\xa3", false, 0},
};

static void test_parse_u64(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(u64_cases); i++) {
        const u64_case_t *c = &u64_cases[i];
        uint64_t out = 12345;
        bool ok = nixl_parse_u64(c->s, &out);
        if (ok != c->ok)
            fail_msg("nixl_parse_u64(\"%s\") returned %d", c->s, ok);
        if (ok && out != c->value)
            fail_msg("nixl_parse_u64(\"%s\") gave %llu", c->s, (unsigned long long)out);
        if (!ok && out != 12345)
            fail_msg("nixl_parse_u64(\"%s\") changed its output on failure", c->s);
    }
    uint64_t out;
    assert_false(nixl_parse_u64(NULL, &out));
}

typedef struct {
    const char *s;
    bool ok;
    int64_t value;
} i64_case_t;

static const i64_case_t i64_cases[] = {
    {"0", true, 0},
    {"1", true, 1},
    {"-1", true, -1},
    {"123", true, 123},
    {"-123", true, -123},
    {"9223372036854775807", true, INT64_MAX},
    {"-9223372036854775807", true, -INT64_MAX},
    {"-9223372036854775808", true, INT64_MIN},
    {"", false, 0},
    {"-", false, 0},
    {"-0", false, 0},
    {"+1", false, 0},
    {"--1", false, 0},
    {"- 1", false, 0},
    {" 1", false, 0},
    {"1 ", false, 0},
    {"01", false, 0},
    {"-01", false, 0},
    {"0x10", false, 0},
    {"1.5", false, 0},
    {"9223372036854775808", false, 0},
    {"-9223372036854775809", false, 0},
    {"18446744073709551615", false, 0},
    {"-99999999999999999999", false, 0},
    {"1-", false, 0},
};

static void test_parse_i64(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(i64_cases); i++) {
        const i64_case_t *c = &i64_cases[i];
        int64_t out = 12345;
        bool ok = nixl_parse_i64(c->s, &out);
        if (ok != c->ok)
            fail_msg("nixl_parse_i64(\"%s\") returned %d", c->s, ok);
        if (ok && out != c->value)
            fail_msg("nixl_parse_i64(\"%s\") gave %lld", c->s, (long long)out);
        if (!ok && out != 12345)
            fail_msg("nixl_parse_i64(\"%s\") changed its output on failure", c->s);
    }
    int64_t out;
    assert_false(nixl_parse_i64(NULL, &out));
}

/* ----- the environment ----- */

/* The same tables, through the environment and the nixl_config_* getters. */
static void test_env_conversions(void **state)
{
    (void)state;
    /* A file that would answer differently proves that the environment wins. */
    use_config("NIXL_TEST_BOOL = false\nNIXL_TEST_U64 = 77\nNIXL_TEST_I64 = 77\n");
    for (size_t i = 0; i < ARRAY_LEN(bool_cases); i++) {
        const bool_case_t *c = &bool_cases[i];
        setenv("NIXL_TEST_BOOL", c->s, 1);
        bool out = !c->value;
        nixl_status_t st = nixl_config_bool("NIXL_TEST_BOOL", &out);
        if (c->ok) {
            assert_int_equal(st, NIXL_SUCCESS);
            assert_int_equal(out, c->value);
        } else {
            assert_int_equal(st, NIXL_ERR_MISMATCH);
            assert_int_equal(out, !c->value);
            assert_error_contains("NIXL_TEST_BOOL");
            char quoted[64];
            snprintf(quoted, sizeof(quoted), "'%s'", c->s);
            assert_error_contains(quoted);
        }
    }
    for (size_t i = 0; i < ARRAY_LEN(u64_cases); i++) {
        const u64_case_t *c = &u64_cases[i];
        setenv("NIXL_TEST_U64", c->s, 1);
        uint64_t out = 12345;
        nixl_status_t st = nixl_config_u64("NIXL_TEST_U64", &out);
        assert_int_equal(st, c->ok ? NIXL_SUCCESS : NIXL_ERR_MISMATCH);
        assert_true(out == (c->ok ? c->value : 12345));
        if (!c->ok)
            assert_error_contains("NIXL_TEST_U64=");
    }
    for (size_t i = 0; i < ARRAY_LEN(i64_cases); i++) {
        const i64_case_t *c = &i64_cases[i];
        setenv("NIXL_TEST_I64", c->s, 1);
        int64_t out = 12345;
        nixl_status_t st = nixl_config_i64("NIXL_TEST_I64", &out);
        assert_int_equal(st, c->ok ? NIXL_SUCCESS : NIXL_ERR_MISMATCH);
        assert_true(out == (c->ok ? c->value : 12345));
        if (!c->ok)
            assert_error_contains("NIXL_TEST_I64=");
    }
    /* Strings are taken as they are, even empty. */
    setenv("NIXL_TEST_STR", "", 1);
    char *s = NULL;
    assert_int_equal(nixl_config_string("NIXL_TEST_STR", &s), NIXL_SUCCESS);
    assert_string_equal(s, "");
    free(s);
    setenv("NIXL_TEST_STR", " spaced = \"value\" ", 1);
    assert_int_equal(nixl_config_string("NIXL_TEST_STR", &s), NIXL_SUCCESS);
    assert_string_equal(s, " spaced = \"value\" ");
    free(s);
    assert_true(nixl_config_exists("NIXL_TEST_STR"));
}

static void test_env_over_file(void **state)
{
    (void)state;
    use_config("NIXL_TEST_STR = \"file\"\nNIXL_TEST_BOOL = true\nNIXL_TEST_U64 = 5\n"
               "NIXL_TEST_I64 = -5\n");
    char *s = NULL;
    assert_int_equal(nixl_config_string("NIXL_TEST_STR", &s), NIXL_SUCCESS);
    assert_string_equal(s, "file");
    free(s);
    setenv("NIXL_TEST_STR", "env", 1);
    assert_int_equal(nixl_config_string("NIXL_TEST_STR", &s), NIXL_SUCCESS);
    assert_string_equal(s, "env");
    free(s);

    bool b = false;
    assert_int_equal(nixl_config_bool("NIXL_TEST_BOOL", &b), NIXL_SUCCESS);
    assert_true(b);
    setenv("NIXL_TEST_BOOL", "off", 1);
    assert_int_equal(nixl_config_bool("NIXL_TEST_BOOL", &b), NIXL_SUCCESS);
    assert_false(b);

    uint64_t u = 0;
    assert_int_equal(nixl_config_u64("NIXL_TEST_U64", &u), NIXL_SUCCESS);
    assert_int_equal(u, 5);
    setenv("NIXL_TEST_U64", "0x10", 1);
    assert_int_equal(nixl_config_u64("NIXL_TEST_U64", &u), NIXL_SUCCESS);
    assert_int_equal(u, 16);

    int64_t i = 0;
    assert_int_equal(nixl_config_i64("NIXL_TEST_I64", &i), NIXL_SUCCESS);
    assert_int_equal(i, -5);
    setenv("NIXL_TEST_I64", "-7", 1);
    assert_int_equal(nixl_config_i64("NIXL_TEST_I64", &i), NIXL_SUCCESS);
    assert_int_equal(i, -7);

    /* Back to the file once the variable is gone. */
    unsetenv("NIXL_TEST_I64");
    assert_int_equal(nixl_config_i64("NIXL_TEST_I64", &i), NIXL_SUCCESS);
    assert_int_equal(i, -5);
}

static void test_env_unparsable_file_not_consulted(void **state)
{
    (void)state;
    use_config("NIXL_TEST_BOOL = true\nNIXL_TEST_U64 = 1\n");
    setenv("NIXL_TEST_BOOL", "maybe", 1);
    bool b = false;
    assert_int_equal(nixl_config_bool("NIXL_TEST_BOOL", &b), NIXL_ERR_MISMATCH);
    assert_false(b);
    assert_error_contains("NIXL_TEST_BOOL='maybe'");
    setenv("NIXL_TEST_U64", "012", 1);
    uint64_t u = 99;
    assert_int_equal(nixl_config_u64("NIXL_TEST_U64", &u), NIXL_ERR_MISMATCH);
    assert_int_equal(u, 99);
    assert_error_contains("NIXL_TEST_U64='012'");

    /* Nor is a broken file read when the environment answers. */
    use_config("NIXL_TEST_BOOL = \n");
    setenv("NIXL_TEST_BOOL", "yes", 1);
    assert_int_equal(nixl_config_bool("NIXL_TEST_BOOL", &b), NIXL_SUCCESS);
    assert_true(b);
    setenv("NIXL_TEST_BOOL", "perhaps", 1);
    assert_int_equal(nixl_config_bool("NIXL_TEST_BOOL", &b), NIXL_ERR_MISMATCH);
    assert_error_contains("perhaps");
    assert_true(nixl_config_exists("NIXL_TEST_BOOL"));
    /* ...while a variable that is not set does reach the broken file. */
    assert_int_equal(nixl_config_u64("NIXL_TEST_I64", &u), NIXL_ERR_MISMATCH);
    assert_error_contains(":1:");
}

static void test_absent(void **state)
{
    (void)state;
    use_config("# nothing here\n");
    /* Not set is not an error: success, the default kept, and no reason left behind. */
    nixl_err_set("an earlier failure");
    char *s = (char *)"untouched";
    assert_int_equal(nixl_config_string("NIXL_TEST_STR", &s), NIXL_SUCCESS);
    assert_null(s);
    bool b = true;
    assert_int_equal(nixl_config_bool("NIXL_TEST_BOOL", &b), NIXL_SUCCESS);
    assert_true(b);
    uint64_t u = 3;
    assert_int_equal(nixl_config_u64("NIXL_TEST_U64", &u), NIXL_SUCCESS);
    assert_int_equal(u, 3);
    int64_t i = -3;
    assert_int_equal(nixl_config_i64("NIXL_TEST_I64", &i), NIXL_SUCCESS);
    assert_int_equal(i, -3);
    assert_string_equal(nixl_err_text(), "an earlier failure");
    assert_false(nixl_config_exists("NIXL_TEST_STR"));
    assert_int_equal(nixl_config_bool(NULL, &b), NIXL_ERR_INVALID_PARAM);
    assert_false(nixl_config_exists(NULL));
}

/* Out of memory is one status with one shape of reason (util/error.h, docs/errors.md). */
static void test_oom_helper(void **state)
{
    (void)state;
    assert_int_equal(NIXL_ERR_OOM, NIXL_ERR_UNKNOWN);
    assert_int_equal(nixl_err_oom("%zu regions of %s", (size_t)3, "UCX"), NIXL_ERR_UNKNOWN);
    assert_string_equal(nixl_err_text(), "out of memory (3 regions of UCX)");
}

/* ----- which file ----- */

static void test_lookup_order(void **state)
{
    (void)state;
    char home[PATH_MAX + 16];
    snprintf(home, sizeof(home), "%s/home", tmpdir);
    assert_int_equal(mkdir(home, 0700), 0);
    char home_cfg[PATH_MAX + 32];
    snprintf(home_cfg, sizeof(home_cfg), "%s/.nixl.cfg", home);
    const char *home_text = "NIXL_TEST_WHERE = \"home\"\n";
    write_text(home_cfg, home_text, strlen(home_text));
    setenv("HOME", home, 1);

    /* NIXL_CONFIG_FILE first, even with a $HOME file. */
    use_config("NIXL_TEST_WHERE = \"explicit\"\n");
    char *s = NULL;
    assert_int_equal(nixl_config_string("NIXL_TEST_WHERE", &s), NIXL_SUCCESS);
    assert_string_equal(s, "explicit");
    free(s);

    /* Then $HOME/.nixl.cfg. */
    unsetenv("NIXL_CONFIG_FILE");
    nixl_config_reset();
    assert_int_equal(nixl_config_load(), NIXL_SUCCESS);
    assert_int_equal(nixl_config_string("NIXL_TEST_WHERE", &s), NIXL_SUCCESS);
    assert_string_equal(s, "home");
    free(s);

    /* Read once: a change to the file is not seen until a reset. */
    const char *changed = "NIXL_TEST_WHERE = \"changed\"\n";
    write_text(home_cfg, changed, strlen(changed));
    assert_int_equal(nixl_config_string("NIXL_TEST_WHERE", &s), NIXL_SUCCESS);
    assert_string_equal(s, "home");
    free(s);
    nixl_config_reset();
    assert_int_equal(nixl_config_string("NIXL_TEST_WHERE", &s), NIXL_SUCCESS);
    assert_string_equal(s, "changed");
    free(s);

    /* A set-but-empty NIXL_CONFIG_FILE means no file at all. */
    setenv("NIXL_CONFIG_FILE", "", 1);
    nixl_config_reset();
    assert_int_equal(nixl_config_string("NIXL_TEST_WHERE", &s), NIXL_SUCCESS);
    assert_null(s);

    /* A NIXL_CONFIG_FILE that does not exist is an error, not a fallback to $HOME. */
    char missing[PATH_MAX + 32];
    snprintf(missing, sizeof(missing), "%s/no-such.cfg", tmpdir);
    setenv("NIXL_CONFIG_FILE", missing, 1);
    nixl_config_reset();
    assert_int_equal(nixl_config_load(), NIXL_ERR_MISMATCH);
    assert_error_contains("NIXL_CONFIG_FILE=");
    assert_error_contains("does not exist");
    assert_int_equal(nixl_config_string("NIXL_TEST_WHERE", &s), NIXL_ERR_MISMATCH);

    /* No $HOME file: /etc/nixl.cfg, which is only checked when the machine has none. */
    unsetenv("NIXL_CONFIG_FILE");
    assert_int_equal(unlink(home_cfg), 0);
    nixl_config_reset();
    if (access("/etc/nixl.cfg", F_OK) != 0) {
        assert_int_equal(nixl_config_load(), NIXL_SUCCESS);
        assert_false(nixl_config_exists("NIXL_TEST_WHERE"));
    }
    /* Nor with HOME unset or empty. */
    setenv("HOME", "", 1);
    nixl_config_reset();
    if (access("/etc/nixl.cfg", F_OK) != 0)
        assert_int_equal(nixl_config_load(), NIXL_SUCCESS);
    unsetenv("HOME");
    nixl_config_reset();
    if (access("/etc/nixl.cfg", F_OK) != 0)
        assert_int_equal(nixl_config_load(), NIXL_SUCCESS);
    if (saved_home)
        setenv("HOME", saved_home, 1);
    rmdir(home);
}

static void test_bad_files(void **state)
{
    (void)state;
    /* A directory. */
    setenv("NIXL_CONFIG_FILE", tmpdir, 1);
    nixl_config_reset();
    assert_int_equal(nixl_config_load(), NIXL_ERR_MISMATCH);
    assert_error_contains("not a regular file");

    /* Over the size limit. */
    size_t big = (1u << 20) + 1;
    char *text = malloc(big);
    assert_non_null(text);
    memset(text, '#', big);
    text[big - 1] = '\n';
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/big.toml", tmpdir);
    write_text(path, text, big);
    free(text);
    setenv("NIXL_CONFIG_FILE", path, 1);
    nixl_config_reset();
    assert_int_equal(nixl_config_load(), NIXL_ERR_MISMATCH);
    assert_error_contains("big.toml");
    assert_error_contains("limit");

    /* Empty is fine. */
    use_config("");
    assert_int_equal(nixl_config_load(), NIXL_SUCCESS);
}

/* ----- the TOML reader ----- */

static const char rich_toml[] =
    "\xef\xbb\xbf# A configuration that uses every kind of value.\n"
    "NIXL_S_BASIC = \"tab\\there \\\"q\\\" back\\\\slash \\u00e9 \\U0001F600 \\b\\f\\n\\r\"\n"
    "NIXL_S_LITERAL = 'C:\\path\\no\\escape \"quoted\"'\n"
    "NIXL_S_EMPTY = \"\"\n"
    "NIXL_S_ML = \"\"\"\n"
    "first\n"
    "  second \\\n"
    "     joined \"\" and \"\"\"\"\n"
    "NIXL_S_ML_LITERAL = '''\n"
    "raw \\n ''line''\n"
    "'''\n"
    "NIXL_S_UTF8 = \"gr\xc3\xbc\xc3\x9f \xe2\x82\xac\"   # trailing comment\n"
    "\"NIXL_Q_KEY\" = \"quoted key\"\n"
    "'NIXL_L_KEY' = \"literal key\"\n"
    "NIXL_I_DEC = 1_000_000\n"
    "NIXL_I_POS = +17\n"
    "NIXL_I_NEG = -17\n"
    "NIXL_I_ZERO = -0\n"
    "NIXL_I_HEX = 0xDEAD_beef\n"
    "NIXL_I_OCT = 0o755\n"
    "NIXL_I_BIN = 0b1101\n"
    "NIXL_I_MAX = 9223372036854775807\n"
    "NIXL_I_MIN = -9223372036854775808\n"
    "NIXL_F_1 = 3.14\n"
    "NIXL_F_2 = -1e-3\n"
    "NIXL_F_3 = 6.626_070e+34\n"
    "NIXL_F_INF = -inf\n"
    "NIXL_F_NAN = nan\n"
    "NIXL_B_T = true\n"
    "NIXL_B_F = false\n"
    "NIXL_TIMEOUT_MS = 00:00:01.5\n"
    "NIXL_T_PLAIN = 07:32:00\n"
    "NIXL_D_DATE = 1979-05-27\n"
    "NIXL_D_LOCAL = 1979-05-27T07:32:00\n"
    "NIXL_D_SPACE = 1979-05-27 07:32:00.999999\n"
    "NIXL_D_OFFSET = 1979-05-27T00:32:00.5-07:00\n"
    "NIXL_D_ZULU = 2000-02-29T00:00:00Z\n"
    "NIXL_A_EMPTY = []\n"
    "NIXL_A_MIXED = [ 1, \"two\", [3, [4]], { five = 5 }, 6.0, ]\n"
    "NIXL_A_MULTI = [\r\n"
    "  \"a\", # comment inside\r\n"
    "\r\n"
    "  'b',\n"
    "  \"\"\"c\n"
    "d\"\"\",\n"
    "]\n"
    "NIXL_IT = { a = 1, b.c = \"x\", \"d\" = [1, 2], e = {} }\n"
    "NIXL_IT_EMPTY = {}\n"
    "\t  NIXL_INDENTED\t=\t\"yes\"\t\n"
    "\"\" = \"the empty key\"\n"
    "dotted.key = 1\n"
    "dotted . other = 2\n"
    "\n"
    "[server]\n"
    "NIXL_IN_TABLE = \"ignored\"\n"
    "NIXL_S_BASIC = \"not a duplicate: another table\"\n"
    "[ server.sub . 'deeper' ]   # comment\n"
    "x = 1\n"
    "[[plugins]]\n"
    "name = \"UCX\"\n"
    "params.k = 1\n"
    "[plugins.sub]\n"
    "[[plugins]]\n"
    "name = \"POSIX\"\n"
    "params.k = 2\n"
    "[plugins.sub]\n"
    "[[plugins.sub.list]]\n"
    "[deep.x.y]\n"
    "[deep]\n"
    "a.c = { x.y = 1, x.z = [ { q = 1 }, { q = 2 } ] }\n"
    "[deep.a.b]\n"
    "[deep.x]\n"
    "NIXL_IN_ARRAY_TABLE = 1\n";

static void check_string(const char *name, const char *want)
{
    char *s = NULL;
    nixl_status_t st = nixl_config_string(name, &s);
    if (st != NIXL_SUCCESS)
        fail_msg("%s: status %d: %s", name, st, nixl_last_error());
    if (!s || strcmp(s, want))
        fail_msg("%s: got \"%s\", want \"%s\"", name, s ? s : "(null)", want);
    free(s);
}

static void check_i64(const char *name, int64_t want)
{
    int64_t v = 0;
    nixl_status_t st = nixl_config_i64(name, &v);
    if (st != NIXL_SUCCESS)
        fail_msg("%s: status %d: %s", name, st, nixl_last_error());
    if (v != want)
        fail_msg("%s: got %lld, want %lld", name, (long long)v, (long long)want);
}

static void test_value_types(void **state)
{
    (void)state;
    use_config(rich_toml);
    assert_int_equal(nixl_config_load(), NIXL_SUCCESS);

    check_string("NIXL_S_BASIC",
                 "tab\there \"q\" back\\slash \xc3\xa9 \xf0\x9f\x98\x80 \b\f\n\r");
    check_string("NIXL_S_LITERAL", "C:\\path\\no\\escape \"quoted\"");
    check_string("NIXL_S_EMPTY", "");
    check_string("NIXL_S_ML", "first\n  second joined \"\" and \"");
    check_string("NIXL_S_ML_LITERAL", "raw \\n ''line''\n");
    check_string("NIXL_S_UTF8", "gr\xc3\xbc\xc3\x9f \xe2\x82\xac");
    check_string("NIXL_Q_KEY", "quoted key");
    check_string("NIXL_L_KEY", "literal key");
    check_string("NIXL_INDENTED", "yes");

    check_i64("NIXL_I_DEC", 1000000);
    check_i64("NIXL_I_POS", 17);
    check_i64("NIXL_I_NEG", -17);
    check_i64("NIXL_I_ZERO", 0);
    check_i64("NIXL_I_HEX", 0xdeadbeef);
    check_i64("NIXL_I_OCT", 0755);
    check_i64("NIXL_I_BIN", 13);
    check_i64("NIXL_I_MAX", INT64_MAX);
    check_i64("NIXL_I_MIN", INT64_MIN);
    uint64_t u = 0;
    assert_int_equal(nixl_config_u64("NIXL_I_MAX", &u), NIXL_SUCCESS);
    assert_true(u == (uint64_t)INT64_MAX);
    assert_int_equal(nixl_config_u64("NIXL_I_HEX", &u), NIXL_SUCCESS);
    assert_true(u == 0xdeadbeef);

    bool b = false;
    assert_int_equal(nixl_config_bool("NIXL_B_T", &b), NIXL_SUCCESS);
    assert_true(b);
    assert_int_equal(nixl_config_bool("NIXL_B_F", &b), NIXL_SUCCESS);
    assert_false(b);

    /* A TOML time for an _MS option is a duration. */
    assert_int_equal(nixl_config_u64("NIXL_TIMEOUT_MS", &u), NIXL_SUCCESS);
    assert_int_equal(u, 1500);
    check_i64("NIXL_TIMEOUT_MS", 1500);

    /* Everything else exists but has no getter. */
    static const char *const others[] = {
        "NIXL_F_1", "NIXL_F_2", "NIXL_F_3", "NIXL_F_INF", "NIXL_F_NAN", "NIXL_T_PLAIN",
        "NIXL_D_DATE", "NIXL_D_LOCAL", "NIXL_D_SPACE", "NIXL_D_OFFSET", "NIXL_D_ZULU",
        "NIXL_A_EMPTY", "NIXL_A_MIXED", "NIXL_A_MULTI", "NIXL_IT", "NIXL_IT_EMPTY", "dotted",
        "server", "plugins", "deep"};
    for (size_t i = 0; i < ARRAY_LEN(others); i++) {
        if (!nixl_config_exists(others[i]))
            fail_msg("%s should exist", others[i]);
        char *s = NULL;
        assert_int_equal(nixl_config_string(others[i], &s), NIXL_ERR_MISMATCH);
        assert_null(s);
        int64_t v;
        assert_int_equal(nixl_config_i64(others[i], &v), NIXL_ERR_MISMATCH);
    }

    /* The document itself, for the values the getters do not expose. */
    nixl_toml_doc_t doc = {0};
    assert_int_equal(nixl_toml_parse("rich", rich_toml, sizeof(rich_toml) - 1, &doc),
                     NIXL_SUCCESS);
    static const struct {
        const char *key;
        nixl_toml_type_t type;
    } types[] = {
        {"NIXL_S_ML", NIXL_TOML_STRING},       {"NIXL_I_OCT", NIXL_TOML_INTEGER},
        {"NIXL_F_1", NIXL_TOML_FLOAT},         {"NIXL_F_NAN", NIXL_TOML_FLOAT},
        {"NIXL_B_F", NIXL_TOML_BOOL},          {"NIXL_T_PLAIN", NIXL_TOML_TIME},
        {"NIXL_D_DATE", NIXL_TOML_DATETIME},   {"NIXL_D_SPACE", NIXL_TOML_DATETIME},
        {"NIXL_D_OFFSET", NIXL_TOML_DATETIME}, {"NIXL_A_MULTI", NIXL_TOML_ARRAY},
        {"NIXL_IT", NIXL_TOML_INLINE_TABLE},   {"dotted", NIXL_TOML_TABLE},
        {"server", NIXL_TOML_TABLE},           {"plugins", NIXL_TOML_ARRAY},
    };
    for (size_t i = 0; i < ARRAY_LEN(types); i++) {
        const nixl_toml_entry_t *e = nixl_toml_find(&doc, types[i].key);
        if (!e || e->v.type != types[i].type)
            fail_msg("%s: type %s", types[i].key, e ? nixl_toml_type_name(e->v.type) : "absent");
    }
    assert_true(nixl_toml_find(&doc, "NIXL_F_1")->v.f == 3.14);
    assert_true(nixl_toml_find(&doc, "NIXL_F_2")->v.f == -1e-3);
    assert_true(nixl_toml_find(&doc, "NIXL_F_3")->v.f == 6.626070e+34);
    assert_true(isinf(nixl_toml_find(&doc, "NIXL_F_INF")->v.f));
    assert_true(nixl_toml_find(&doc, "NIXL_F_INF")->v.f < 0);
    assert_true(isnan(nixl_toml_find(&doc, "NIXL_F_NAN")->v.f));
    assert_int_equal(nixl_toml_find(&doc, "NIXL_T_PLAIN")->v.ms, (7 * 3600 + 32 * 60) * 1000);
    assert_int_equal(nixl_toml_find(&doc, "NIXL_I_DEC")->line, 15);
    assert_string_equal(nixl_toml_find(&doc, "")->v.str, "the empty key");
    nixl_toml_free(&doc);
}

static void test_table_keys_ignored(void **state)
{
    (void)state;
    use_config("NIXL_TEST_U64 = 1\n"
               "[NIXL_TABLE]\n"
               "NIXL_TEST_STR = \"in a table\"\n"
               "NIXL_TEST_U64 = 2\n"
               "[[NIXL_ARRAY]]\n"
               "NIXL_TEST_BOOL = true\n"
               "[NIXL_TABLE.sub]\n"
               "NIXL_TEST_I64 = 3\n");
    uint64_t u = 0;
    assert_int_equal(nixl_config_u64("NIXL_TEST_U64", &u), NIXL_SUCCESS);
    assert_int_equal(u, 1);
    assert_false(nixl_config_exists("NIXL_TEST_STR"));
    assert_false(nixl_config_exists("NIXL_TEST_BOOL"));
    assert_false(nixl_config_exists("NIXL_TEST_I64"));
    assert_false(nixl_config_exists("sub"));
    assert_true(nixl_config_exists("NIXL_TABLE"));
    assert_true(nixl_config_exists("NIXL_ARRAY"));

    /* Dotted keys and inline tables make tables too, not top-level options. */
    use_config("NIXL_TEST_STR.x = \"dotted\"\nNIXL_OUTER = { NIXL_TEST_BOOL = true }\n");
    assert_true(nixl_config_exists("NIXL_TEST_STR"));
    char *s = NULL;
    assert_int_equal(nixl_config_string("NIXL_TEST_STR", &s), NIXL_ERR_MISMATCH);
    assert_error_contains("table");
    assert_false(nixl_config_exists("NIXL_TEST_BOOL"));
    assert_false(nixl_config_exists("x"));
}

typedef struct {
    const char *file;
    const char *name;
    int (*get)(const char *name);
    const char *says;
} mismatch_case_t;

static int get_string(const char *name)
{
    char *s = (char *)"x";
    nixl_status_t st = nixl_config_string(name, &s);
    if (st == NIXL_SUCCESS)
        free(s);
    else
        assert_string_equal(s, "x");
    return st;
}

static int get_bool(const char *name)
{
    bool b = true;
    nixl_status_t st = nixl_config_bool(name, &b);
    if (st != NIXL_SUCCESS)
        assert_true(b);
    return st;
}

static int get_u64(const char *name)
{
    uint64_t u = 11;
    nixl_status_t st = nixl_config_u64(name, &u);
    if (st != NIXL_SUCCESS)
        assert_int_equal(u, 11);
    return st;
}

static int get_i64(const char *name)
{
    int64_t i = 11;
    nixl_status_t st = nixl_config_i64(name, &i);
    if (st != NIXL_SUCCESS)
        assert_int_equal(i, 11);
    return st;
}

static const mismatch_case_t mismatch_cases[] = {
    {"K = true", "K", get_string, "must be a TOML string, but it is a boolean"},
    {"K = 5", "K", get_string, "but it is an integer"},
    {"K = [\"a\"]", "K", get_string, "array"},
    {"K = \"a\\u0000b\"", "K", get_string, "NUL"},
    {"K = \"true\"", "K", get_bool, "must be a TOML boolean, but it is a string"},
    {"K = 1", "K", get_bool, "integer"},
    {"K = \"5\"", "K", get_u64, "must be a non-negative TOML integer"},
    {"K = -5", "K", get_u64, "negative integer"},
    {"K = 5.0", "K", get_u64, "float"},
    {"K = true", "K", get_u64, "boolean"},
    {"K = 00:00:01", "K", get_u64, "time"},
    {"K_MS = 1979-05-27", "K_MS", get_u64, "date-time"},
    {"K = \"-5\"", "K", get_i64, "must be a TOML integer, but it is a string"},
    {"K = 1e3", "K", get_i64, "float"},
    {"K = {}", "K", get_i64, "inline table"},
    {"[K]", "K", get_i64, "table"},
    {"K = 00:00:01", "K", get_i64, "time"},
};

static void test_type_mismatch(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(mismatch_cases); i++) {
        const mismatch_case_t *c = &mismatch_cases[i];
        const char *path = use_config(c->file);
        int st = c->get(c->name);
        if (st != NIXL_ERR_MISMATCH)
            fail_msg("\"%s\": status %d", c->file, st);
        char where[PATH_MAX + 8];
        snprintf(where, sizeof(where), "%s:1: %s must be", path, c->name);
        assert_error_contains(where);
        assert_error_contains(c->says);
    }
    /* The right getter on the same values works. */
    use_config("K = -5\nB = false\n");
    assert_int_equal(get_i64("K"), NIXL_SUCCESS);
    assert_int_equal(get_bool("B"), NIXL_SUCCESS);
}

typedef struct {
    const char *file;
    unsigned line;
    const char *says;
} malformed_case_t;

static const malformed_case_t malformed_cases[] = {
    {"A = 1\nB = \"unterminated\nC = 2\n", 2, "unterminated string"},
    {"A = 'unterminated\n", 1, "unterminated string"},
    {"A = \"unterminated", 1, "unterminated string"},
    {"A = 1\n\nB = \"\"\"never\nclosed\n", 3, "unterminated multi-line string"},
    {"A = '''never closed''\n", 1, "unterminated multi-line string"},
    {"A = 1\nB 2\n", 2, "expected '='"},
    {"A = 1\nB\n", 2, "expected '='"},
    {"= 1\n", 1, "where a key was expected"},
    {"A = \"bad \\q escape\"\n", 1, "invalid escape sequence '\\q'"},
    {"A = \"bad \\u12G4\"\n", 1, "hexadecimal digits"},
    {"A = \"surrogate \\uD800\"\n", 1, "not a Unicode scalar value"},
    {"A = \"too big \\U00110000\"\n", 1, "not a Unicode scalar value"},
    {"A = \"trailing backslash \\", 1, "unterminated string"},
    {"A = 1\nB = 2\nA = 3\n", 3, "duplicate key 'A' (first defined on line 1)"},
    {"\"A\" = 1\n'A' = 2\n", 2, "duplicate key"},
    {"A.b = 1\nA = 2\n", 2, "duplicate key"},
    {"A = 1\nA.b = 2\n", 2, "already defined on line 1"},
    {"A = 1\n[A]\n", 2, "already defined on line 1"},
    {"A = []\n[[A]]\n", 2, "already defined"},
    /* Keys and tables below the top level follow the TOML rules too. */
    {"[t]\nx = 1\nx = 2\n", 3, "duplicate key 'x' (first defined on line 2)"},
    {"[t]\nx.y = 1\nx.y = 2\n", 3, "duplicate key 'x.y'"},
    {"[t]\nx = 1\nx.y = 2\n", 3, "'x' is already defined on line 2 (integer), not as a table"},
    {"[a]\n[b]\n[a]\n", 3, "table [a] is already defined on line 1"},
    {"[a.b]\n[a]\n[a.b]\n", 3, "table [a.b] is already defined on line 1"},
    {"[a]\n[\"a\"]\n", 2, "table [a] is already defined"},
    {"a.b = 1\n[a]\n", 2, "by a dotted key"},
    {"[f]\napple.color = 1\n[f.apple]\n", 3, "by a dotted key"},
    {"[a.b.c]\n[a]\nb.c.t = 1\n", 3, "a dotted key cannot add to table 'b'"},
    {"[[a]]\n[a]\n", 2, "array of tables"},
    {"[a]\n[[a]]\n", 2, "[[a]]"},
    {"a = {x = 1}\n[a.b]\n", 2, "(inline table), not as a table"},
    {"a = {x = 1}\na.y = 2\n", 2, "(inline table), not as a table"},
    {"a = {x = 1, x = 2}\n", 1, "duplicate key 'x'"},
    {"a = [{x = 1}, {y = 1, y = 2}]\n", 1, "duplicate key 'y'"},
    {"X = 1\nA = [1, 2\n", 2, "unterminated array"},
    {"A = [1, 2\nB = 3\n", 2, "unexpected 'B' in an array"},
    {"A = [1 2]\n", 1, "expected ',' or ']'"},
    {"A = [,]\n", 1, "where a value was expected"},
    {"A = 1 2\n", 1, "after a value"},
    {"A = \"x\" y\n", 1, "unexpected 'y' after a value"},
    {"A = true false\n", 1, "after a value"},
    {"A = truex\n", 1, "invalid value 'truex'"},
    {"A = [1] ]\n", 1, "after a value"},
    {"A = \n", 1, "missing value"},
    {"A =", 1, "missing value"},
    {"A = 01\n", 1, "leading zeros"},
    {"A = 1__0\n", 1, "invalid value"},
    {"A = 1_\n", 1, "invalid value"},
    {"A = 0x\n", 1, "invalid integer"},
    {"A = -0x1\n", 1, "sign is not allowed"},
    {"A = 0b102\n", 1, "invalid integer"},
    {"A = 9223372036854775808\n", 1, "does not fit"},
    {"A = -9223372036854775809\n", 1, "does not fit"},
    {"A = 0x8000000000000000\n", 1, "does not fit"},
    {"A = 1.\n", 1, "invalid float"},
    {"A = .5\n", 1, "invalid value"},
    {"A = 1e\n", 1, "invalid float"},
    {"A = infinity\n", 1, "invalid value"},
    {"A = TRUE\n", 1, "invalid value"},
    {"A = 25:00:00\n", 1, "invalid time"},
    {"A = 12:00\n", 1, "invalid time"},
    {"A = 1979-13-01\n", 1, "invalid date"},
    {"A = 1979-02-29\n", 1, "invalid date"},
    {"A = 1979-05-27X07:00:00\n", 1, "invalid date-time"},
    {"A = 1979-05-27T07:00:00+7:00\n", 1, "invalid date-time"},
    {"A = { a = 1,\n b = 2 }\n", 1, "unterminated inline table"},
    {"A = { a = 1, }\n", 1, "where a key was expected"},
    {"A = { a = 1 b = 2 }\n", 1, "expected ',' or '}'"},
    {"A = { a 1 }\n", 1, "expected '='"},
    {"A = 1\n[table\n", 2, "expected ']'"},
    {"[[table]\n", 1, "expected ']]'"},
    {"[]\n", 1, "where a key was expected"},
    {"[a] x = 1\n", 1, "after a table header"},
    {"[a.]\n", 1, "where a key was expected"},
    {"A = 1\nB = \"\xff\"\n", 2, "invalid UTF-8"},
    {"A = \"\xe2\x82\"\n", 1, "invalid UTF-8"},
    {"A = \"\xed\xa0\x80\"\n", 1, "invalid UTF-8"},
    {"A = \"\xc0\xaf\"\n", 1, "invalid UTF-8"},
    {"A = \"bell \x07\"\n", 1, "control character 0x07"},
    {"# comment with \x01\n", 1, "control character 0x01 in a comment"},
    {"A = 1\rB = 2\n", 1, "unexpected byte 0x0d"},
    {"\"\"\"A\"\"\" = 1\n", 1, "multi-line"},
    {"A = \"\"\"x\"\"\"\"\"\"\n", 1, "too many quotes"},
    {"A = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]"
     "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n",
     1, "nested more than"},
};

static void test_malformed(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(malformed_cases); i++) {
        const malformed_case_t *c = &malformed_cases[i];
        const char *path = use_config(c->file);
        nixl_status_t st = nixl_config_load();
        if (st != NIXL_ERR_MISMATCH)
            fail_msg("case %zu \"%s\": status %d", i, c->file, st);
        char where[PATH_MAX + 16];
        snprintf(where, sizeof(where), "%s:%u: ", path, c->line);
        const char *err = nixl_last_error();
        if (strncmp(err, where, strlen(where)) || !strstr(err, c->says))
            fail_msg("case %zu: error \"%s\", want \"%s...%s\"", i, err, where, c->says);
    }
}

static void test_error_sticky(void **state)
{
    (void)state;
    const char *path = use_config("NIXL_TEST_U64 = 1\nNIXL_TEST_U64 = 2\n");
    char want[PATH_MAX + 64];
    snprintf(want, sizeof(want), "%s:2: duplicate key", path);
    assert_int_equal(nixl_config_load(), NIXL_ERR_MISMATCH);
    assert_error_contains(want);

    /* Fixing the file does not help until a reset: every call reports the same error. */
    write_text(path, "NIXL_TEST_U64 = 1\n", strlen("NIXL_TEST_U64 = 1\n"));
    nixl_err_clear();
    uint64_t u = 0;
    assert_int_equal(nixl_config_u64("NIXL_TEST_U64", &u), NIXL_ERR_MISMATCH);
    assert_error_contains(want);
    nixl_err_clear();
    char *s = NULL;
    assert_int_equal(nixl_config_string("NIXL_TEST_STR", &s), NIXL_ERR_MISMATCH);
    assert_error_contains(want);
    bool b;
    assert_int_equal(nixl_config_bool("NIXL_TEST_BOOL", &b), NIXL_ERR_MISMATCH);
    int64_t i;
    assert_int_equal(nixl_config_i64("NIXL_TEST_I64", &i), NIXL_ERR_MISMATCH);
    assert_false(nixl_config_exists("NIXL_TEST_U64"));
    nixl_err_clear();
    assert_int_equal(nixl_config_load(), NIXL_ERR_MISMATCH);
    assert_error_contains(want);
    /* The environment still answers. */
    setenv("NIXL_TEST_U64", "9", 1);
    assert_int_equal(nixl_config_u64("NIXL_TEST_U64", &u), NIXL_SUCCESS);
    assert_int_equal(u, 9);
    unsetenv("NIXL_TEST_U64");

    nixl_config_reset();
    assert_int_equal(nixl_config_u64("NIXL_TEST_U64", &u), NIXL_SUCCESS);
    assert_int_equal(u, 1);
}

/* Many keys: the index grows, lookups and duplicate detection stay right. */
static void test_many_keys(void **state)
{
    (void)state;
    const unsigned n = 5000;
    size_t cap = (size_t)n * 32 + 64;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t len = 0;
    for (unsigned k = 0; k < n; k++)
        len += (size_t)snprintf(text + len, cap - len, "NIXL_K%u = %u\n", k, k * 3);
    text[len] = '\0';
    use_config(text);
    for (unsigned k = 0; k < n; k += 97) {
        char name[32];
        snprintf(name, sizeof(name), "NIXL_K%u", k);
        uint64_t u = 0;
        assert_int_equal(nixl_config_u64(name, &u), NIXL_SUCCESS);
        assert_int_equal(u, k * 3);
    }
    assert_false(nixl_config_exists("NIXL_K5000"));
    snprintf(text + len, cap - len, "NIXL_K4321 = 0\n");
    const char *path = use_config(text);
    assert_int_equal(nixl_config_load(), NIXL_ERR_MISMATCH);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof(want), "%s:%u: duplicate key 'NIXL_K4321' (first defined on line 4322)",
             path, n + 1);
    assert_error_contains(want);
    free(text);
}

static void *lookup_thread(void *arg)
{
    uint64_t *out = arg;
    for (int k = 0; k < 200; k++) {
        if (nixl_config_u64("NIXL_TEST_U64", out) != NIXL_SUCCESS) {
            *out = 0;
            break;
        }
    }
    return NULL;
}

/* The first lookups race to load the file; all must see it loaded once. */
static void test_threads(void **state)
{
    (void)state;
    use_config("NIXL_TEST_U64 = 4242\n");
    pthread_t th[8];
    uint64_t got[8] = {0};
    for (int k = 0; k < 8; k++)
        assert_int_equal(pthread_create(&th[k], NULL, lookup_thread, &got[k]), 0);
    for (int k = 0; k < 8; k++) {
        pthread_join(th[k], NULL);
        assert_int_equal(got[k], 4242);
    }
}

/* Every prefix, and single-byte damage, of a rich valid file: an error or a document, never a
 * crash, an overrun (each copy is exactly sized for ASan/valgrind) or a leak. */
static void test_truncations(void **state)
{
    (void)state;
    const size_t n = sizeof(rich_toml) - 1;
    size_t ok = 0;
    for (size_t len = 0; len <= n; len++) {
        char *copy = malloc(len ? len : 1);
        assert_non_null(copy);
        memcpy(copy, rich_toml, len);
        nixl_toml_doc_t doc = {0};
        if (nixl_toml_parse("prefix", copy, len, &doc) == NIXL_SUCCESS)
            ok++;
        else
            assert_int_equal(strncmp(nixl_last_error(), "prefix:", 7), 0);
        nixl_toml_free(&doc);
        free(copy);
    }
    assert_true(ok > 10); /* at least the prefixes that end on a line */

    static const char damage[] = {'"', '\'', '[', ']', '{', '\\', '\n', '=', '#', ' ', '.', '\0',
                                  '\x80'};
    char *copy = malloc(n);
    assert_non_null(copy);
    for (size_t pos = 0; pos < n; pos++) {
        for (size_t d = 0; d < sizeof(damage); d++) {
            memcpy(copy, rich_toml, n);
            copy[pos] = damage[d];
            nixl_toml_doc_t doc = {0};
            nixl_toml_parse("damaged", copy, n, &doc);
            nixl_toml_free(&doc);
        }
    }
    free(copy);

    /* A few prefixes the whole way, through a file. */
    for (size_t len = 0; len <= n; len += 37) {
        char path[PATH_MAX + 16];
        snprintf(path, sizeof(path), "%s/prefix.toml", tmpdir);
        write_text(path, rich_toml, len);
        setenv("NIXL_CONFIG_FILE", path, 1);
        nixl_config_reset();
        nixl_status_t st = nixl_config_load();
        assert_true(st == NIXL_SUCCESS || st == NIXL_ERR_MISMATCH);
        if (st != NIXL_SUCCESS)
            assert_non_null(strstr(nixl_last_error(), "prefix.toml:"));
    }
}

int main(void)
{
    /* Malformed files are logged as warnings; keep the output readable unless asked. */
    setenv("NIXL_LOG_LEVEL", "ERROR", 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_parse_bool, test_setup),
        cmocka_unit_test_setup(test_parse_u64, test_setup),
        cmocka_unit_test_setup(test_parse_i64, test_setup),
        cmocka_unit_test_setup(test_env_conversions, test_setup),
        cmocka_unit_test_setup(test_env_over_file, test_setup),
        cmocka_unit_test_setup(test_env_unparsable_file_not_consulted, test_setup),
        cmocka_unit_test_setup(test_absent, test_setup),
        cmocka_unit_test(test_oom_helper),
        cmocka_unit_test_setup(test_lookup_order, test_setup),
        cmocka_unit_test_setup(test_bad_files, test_setup),
        cmocka_unit_test_setup(test_value_types, test_setup),
        cmocka_unit_test_setup(test_table_keys_ignored, test_setup),
        cmocka_unit_test_setup(test_type_mismatch, test_setup),
        cmocka_unit_test_setup(test_malformed, test_setup),
        cmocka_unit_test_setup(test_error_sticky, test_setup),
        cmocka_unit_test_setup(test_many_keys, test_setup),
        cmocka_unit_test_setup(test_threads, test_setup),
        cmocka_unit_test_setup(test_truncations, test_setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
