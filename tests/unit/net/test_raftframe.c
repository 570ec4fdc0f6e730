/* test_raftframe.c - the raft framing checker (net/raftframe): well-formed
 * messages pass byte for byte however they are split; the inputs that
 * crashed raft 0.22.1's decoder, and every other inconsistency, are refused
 * before anything of the bad message is passed on. */
#include "core/err.h"
#include "net/raftframe.h"
#include "harness.h"

struct sink {
    uint8_t buf[4096];
    size_t n;
};

static void emit(void *arg, const uint8_t *b, size_t n)
{
    struct sink *s = arg;
    if (s->n + n <= sizeof s->buf)
        memcpy(s->buf + s->n, b, n);
    s->n += n;
}

static uint8_t *put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++, v >>= 8)
        *p++ = (uint8_t)v;
    return p;
}

static uint8_t *put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++, v >>= 8)
        *p++ = (uint8_t)v;
    return p;
}

static uint8_t *preamble(uint8_t *p, unsigned type, unsigned version,
                         uint64_t hlen)
{
    return put64(put64(p, type | (uint64_t)version << 16), hlen);
}

/* AppendEntries with n entries of the given sizes, payload included. */
static size_t append_entries(uint8_t *out, unsigned n, const uint32_t *sizes)
{
    uint8_t *p = preamble(out, 1, 0, 48 + 16 * n);
    p = put64(put64(put64(put64(p, 3), 10), 2), 9); /* term prev commit */
    p = put64(p, n);
    for (unsigned i = 0; i < n; i++) {
        p = put64(p, 3);              /* term */
        *p++ = 1;                     /* RAFT_COMMAND */
        *p++ = 0, *p++ = 0, *p++ = 0; /* unused */
        p = put32(p, sizes[i]);
    }
    p = put64(p, 0); /* unused */
    for (unsigned i = 0; i < n; i++)
        for (uint32_t k = 0; k < sizes[i]; k++)
            *p++ = (uint8_t)(i + k);
    return (size_t)(p - out);
}

/* InstallSnapshot with a one-server configuration and dlen data bytes. */
static size_t install_snapshot(uint8_t *out, uint64_t dlen)
{
    uint8_t conf[64], *c = conf;
    *c++ = 1;
    c = put64(c, 1);
    c = put64(c, 7);
    memcpy(c, "127.0.0.1:9001", 15);
    c += 15;
    *c++ = 1; /* voter */
    size_t clen = (size_t)(c - conf);
    uint8_t *p = preamble(out, 5, 0, 56 + clen);
    p = put64(put64(put64(put64(p, 3), 100), 2), 90);
    p = put64(p, clen);
    memcpy(p, conf, clen);
    p += clen;
    p = put64(p, dlen);
    p = put64(p, 0);
    for (uint64_t k = 0; k < dlen; k++)
        *p++ = (uint8_t)k;
    return (size_t)(p - out);
}

static struct raftframe *fresh(void)
{
    static struct raftframe f;
    raftframe_init(&f, 1 << 20);
    return &f;
}

TEST(well_formed_pass_whole_and_split)
{
    uint8_t msg[2048];
    uint32_t sizes[3] = {8, 16, 24};
    size_t n = append_entries(msg, 3, sizes);
    n += install_snapshot(msg + n, 40);
    uint8_t *p = preamble(msg + n, 3, 2, 40); /* RequestVote */
    memset(p, 0, 40);
    n += 16 + 40;
    p = preamble(msg + n, 2, 2, 32); /* AppendEntriesResult */
    memset(p, 0, 32);
    n += 16 + 32;
    p = preamble(msg + n, 1, 0, 48); /* heartbeat: no entries */
    memset(p, 0, 48);
    n += 16 + 48;
    for (size_t chunk = 1; chunk <= n; chunk = chunk * 3 + 1) {
        struct raftframe *f = fresh();
        struct sink s = {.n = 0};
        for (size_t off = 0; off < n; off += chunk) {
            size_t k = n - off < chunk ? n - off : chunk;
            ASSERT_EQ(raftframe_feed(f, msg + off, k, emit, &s), 0);
        }
        ASSERT_EQ(s.n, n);
        ASSERT_MEM_EQ(s.buf, msg, n);
        ASSERT_U64_EQ(f->messages, 5);
    }
    return 0;
}

/* Feeds msg; requires a refusal and that nothing of it was emitted. */
static int refused(const uint8_t *msg, size_t n, const char *why_part)
{
    struct raftframe *f = fresh();
    struct sink s = {.n = 0};
    int rv = raftframe_feed(f, msg, n, emit, &s);
    if (rv != ERR_MALFORMED || s.n != 0 ||
        strstr(f->errmsg, why_part) == NULL) {
        fprintf(stderr, "  rv=%d emitted=%zu errmsg=%s\n", rv, s.n, f->errmsg);
        return 1;
    }
    /* The stream stays dead. */
    if (raftframe_feed(f, msg, 1, emit, &s) != ERR_MALFORMED)
        return 1;
    return 0;
}

TEST(crash_inputs_from_the_probe)
{
    /* A 48-byte AppendEntries header [term, prev index 9, prev term,
     * commit, n_entries 1, 0] with the entry header missing: it segfaults
     * raft 0.22.1 (measured against a node without this checker). */
    uint8_t m[64], *p = preamble(m, 1, 0, 48);
    p = put64(put64(put64(put64(put64(put64(p, 100), 9), 0), 0), 1), 0);
    ASSERT_EQ(refused(m, 16 + 48, "1 entries need a 64-byte header"), 0);
    /* An all-zero 16-byte AppendEntries header. */
    memset(preamble(m, 1, 0, 16), 0, 16);
    ASSERT_EQ(refused(m, 32, "bad header length 16"), 0);
    return 0;
}

TEST(bad_preambles_and_headers)
{
    uint8_t m[256];
    memset(m, 0, sizeof m);
    preamble(m, 9, 0, 24);
    ASSERT_EQ(refused(m, 16, "unknown raft message type 9"), 0);
    preamble(m, 0, 0, 24);
    ASSERT_EQ(refused(m, 16, "unknown raft message type 0"), 0);
    preamble(m, 3, 2, 32); /* RequestVote without its flags word */
    ASSERT_EQ(refused(m, 16, "bad header length 32"), 0);
    preamble(m, 2, 2, 24); /* v2 AppendEntriesResult needs 32 */
    ASSERT_EQ(refused(m, 16, "bad header length 24"), 0);
    preamble(m, 4, 2, 16); /* v2 RequestVoteResult needs 24 */
    ASSERT_EQ(refused(m, 16, "bad header length 16"), 0);
    preamble(m, 6, 0, 0);
    ASSERT_EQ(refused(m, 16, "bad header length 0"), 0);
    preamble(m, 1, 0, (uint64_t)1 << 40); /* huge header length */
    ASSERT_EQ(refused(m, 16, "bad header length"), 0);
    preamble(m, 5, 0, 47);
    ASSERT_EQ(refused(m, 16, "bad header length 47"), 0);
    return 0;
}

TEST(bad_entries)
{
    uint8_t m[512];
    uint32_t unaligned[2] = {8, 12};
    size_t n = append_entries(m, 2, unaligned);
    ASSERT_EQ(refused(m, n, "entry 1 has size 12"), 0);
    uint32_t zero[1] = {0};
    n = append_entries(m, 1, zero);
    ASSERT_EQ(refused(m, n, "entry 0 has size 0"), 0);
    uint32_t ok[1] = {8};
    n = append_entries(m, 1, ok);
    m[16 + 40 + 8] = 7; /* entry type */
    ASSERT_EQ(refused(m, n, "entry 0 has type 7"), 0);
    n = append_entries(m, 1, ok);
    put64(m + 16 + 32, 1000000); /* count beyond the cap */
    ASSERT_EQ(refused(m, n, "1000000 entries"), 0);
    /* Payload above the message cap. */
    uint32_t big[1] = {1u << 24};
    uint8_t *p = preamble(m, 1, 0, 64);
    p = put64(put64(put64(put64(put64(p, 1), 1), 1), 1), 1);
    p = put64(p, 1);
    *p++ = 1, *p++ = 0, *p++ = 0, *p++ = 0;
    p = put32(p, big[0]);
    put64(p, 0);
    ASSERT_EQ(refused(m, 16 + 64, "payload above"), 0);
    return 0;
}

TEST(bad_snapshots)
{
    uint8_t m[512];
    size_t n = install_snapshot(m, 8);
    m[16 + 40] = 2; /* configuration format */
    ASSERT_EQ(refused(m, n, "bad configuration encoding"), 0);
    n = install_snapshot(m, 8);
    put64(m + 16 + 40 + 1, 5); /* five servers, one encoded */
    ASSERT_EQ(refused(m, n, "configuration truncated"), 0);
    n = install_snapshot(m, 8);
    put64(m + 16 + 32, 4000); /* configuration length beyond the header */
    ASSERT_EQ(refused(m, n, "does not fit"), 0);
    n = install_snapshot(m, 0);
    ASSERT_EQ(refused(m, n, "0 bytes of data"), 0);
    n = install_snapshot(m, 8);
    memset(m + 16 + 40 + 9 + 8, 'a', 15); /* address without its NUL */
    ASSERT_EQ(refused(m, n, "bad server address"), 0);
    return 0;
}

TEST(fuzz_never_emits_a_bad_message)
{
    /* Random mutations of a good stream: the checker either passes the
     * stream or refuses; it never reads out of bounds (ASan build). */
    uint8_t good[1024], m[1024];
    uint32_t sizes[2] = {8, 16};
    size_t n = append_entries(good, 2, sizes);
    n += install_snapshot(good + n, 16);
    uint64_t seed = 88172645463325252ull;
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(m, good, n);
        for (int k = 0; k < 3; k++) {
            seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
            m[seed % n] = (uint8_t)(seed >> 32);
        }
        struct raftframe *f = fresh();
        struct sink s = {.n = 0};
        (void)raftframe_feed(f, m, n, emit, &s);
        ASSERT(s.n <= n);
    }
    return 0;
}

TEST_LIST(TEST_ENTRY(well_formed_pass_whole_and_split),
          TEST_ENTRY(crash_inputs_from_the_probe),
          TEST_ENTRY(bad_preambles_and_headers), TEST_ENTRY(bad_entries),
          TEST_ENTRY(bad_snapshots), TEST_ENTRY(fuzz_never_emits_a_bad_message))
