/* raftframe.c - the raft message framing checker (see raftframe.h). */
#include "net/raftframe.h"
#include "core/err.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

enum { ST_PREAMBLE, ST_HEADER, ST_PAYLOAD, ST_DEAD };

/* raft's message types (raft.h enum raft_message_type). */
enum {
    T_APPEND_ENTRIES = 1,
    T_APPEND_ENTRIES_RESULT,
    T_REQUEST_VOTE,
    T_REQUEST_VOTE_RESULT,
    T_INSTALL_SNAPSHOT,
    T_TIMEOUT_NOW
};

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static int die(struct raftframe *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->errmsg, sizeof f->errmsg, fmt, ap);
    va_end(ap);
    f->state = ST_DEAD;
    return ERR_MALFORMED;
}

void raftframe_init(struct raftframe *f, uint64_t max_message)
{
    f->max_message = max_message ? max_message : (uint64_t)64 << 20;
    f->state = ST_PREAMBLE;
    f->got = 0;
    f->header_len = 0;
    f->payload_left = 0;
    f->messages = 0;
    f->errmsg[0] = '\0';
}

/* The header length raft's decoder needs for this type and version, checked
 * against what the preamble announced. */
static int check_header_len(struct raftframe *f, unsigned type,
                            unsigned version, uint64_t len)
{
    bool ok;
    switch (type) {
    case T_APPEND_ENTRIES:   /* 32 fixed + batch header (8 + 16 n) + 8 */
    case T_INSTALL_SNAPSHOT: /* 40 fixed + configuration + 8 + 8 */
        ok = len >= 48 && len <= RAFTFRAME_HEADER_MAX;
        break;
    case T_APPEND_ENTRIES_RESULT: /* v0 24 bytes; v1/v2 read 4 more */
        ok = len == 32 || (len == 24 && version == 0);
        break;
    case T_REQUEST_VOTE: /* every version reads the flags word */
        ok = len == 40;
        break;
    case T_REQUEST_VOTE_RESULT: /* v1 16 bytes; v2 reads 6 more */
        ok = len == 24 || (len == 16 && version <= 1);
        break;
    case T_TIMEOUT_NOW:
        ok = len == 24;
        break;
    default:
        return die(f, "unknown raft message type %u", type);
    }
    if (!ok)
        return die(f,
                   "raft message type %u version %u: bad header length "
                   "%llu",
                   type, version, (unsigned long long)len);
    return 0;
}

/* AppendEntries: the batch header must fit, and the payload is the sum of
 * the entries' sizes, each a non-zero multiple of 8. */
static int check_append_entries(struct raftframe *f, uint64_t *payload)
{
    const uint8_t *h = f->header;
    uint64_t n = le64(h + 32);
    if (n > RAFTFRAME_MAX_ENTRIES)
        return die(f, "append entries: %llu entries (at most %d)",
                   (unsigned long long)n, RAFTFRAME_MAX_ENTRIES);
    uint64_t need = 40 + 16 * n;
    if (f->header_len < need || f->header_len > need + 8)
        return die(f,
                   "append entries: %llu entries need a %llu-byte header, "
                   "got %zu",
                   (unsigned long long)n, (unsigned long long)need + 8,
                   f->header_len);
    uint64_t sum = 0;
    for (uint64_t i = 0; i < n; i++) {
        const uint8_t *e = h + 40 + 16 * i;
        unsigned type = e[8];
        uint32_t len = le32(e + 12);
        if (type < 1 || type > 3)
            return die(f, "append entries: entry %llu has type %u",
                       (unsigned long long)i, type);
        if (len == 0 || len % 8 != 0)
            return die(f,
                       "append entries: entry %llu has size %u (want a "
                       "non-zero multiple of 8)",
                       (unsigned long long)i, len);
        sum += len;
        if (sum > f->max_message)
            return die(f, "append entries: payload above %llu bytes",
                       (unsigned long long)f->max_message);
    }
    *payload = sum;
    return 0;
}

/* A configuration as raft encodes it: format 1, u64 server count, then per
 * server u64 id, NUL-terminated address, u8 role; all inside len bytes. */
static int check_configuration(struct raftframe *f, const uint8_t *c,
                               uint64_t len)
{
    if (len < 9 || c[0] != 1)
        return die(f, "install snapshot: bad configuration encoding");
    uint64_t n = le64(c + 1), off = 9;
    if (n > RAFTFRAME_MAX_SERVERS)
        return die(f, "install snapshot: %llu servers in the configuration",
                   (unsigned long long)n);
    for (uint64_t i = 0; i < n; i++) {
        if (len - off < 8 + 1 + 1)
            return die(f, "install snapshot: configuration truncated");
        off += 8;
        const uint8_t *nul = memchr(c + off, '\0', len - off);
        size_t alen = nul ? (size_t)(nul - (c + off)) : 0;
        if (nul == NULL || alen == 0 || alen >= RAFTFRAME_ADDRESS_MAX)
            return die(f, "install snapshot: bad server address");
        off += alen + 1;
        if (off >= len) /* the role byte must follow */
            return die(f, "install snapshot: configuration truncated");
        if (c[off] > 2)
            return die(f, "install snapshot: server role %u", c[off]);
        off++;
    }
    return 0;
}

/* InstallSnapshot: 32 bytes, the configuration's length and bytes, then the
 * data length (u64) that the payload must carry. */
static int check_install_snapshot(struct raftframe *f, uint64_t *payload)
{
    const uint8_t *h = f->header;
    uint64_t clen = le64(h + 32);
    if (clen > f->header_len || f->header_len - clen < 48 ||
        f->header_len - clen > 56)
        return die(f,
                   "install snapshot: configuration of %llu bytes does "
                   "not fit a %zu-byte header",
                   (unsigned long long)clen, f->header_len);
    int rv = check_configuration(f, h + 40, clen);
    if (rv != 0)
        return rv;
    uint64_t dlen = le64(h + 40 + clen);
    if (dlen == 0 || dlen > f->max_message)
        return die(f, "install snapshot: %llu bytes of data (1..%llu)",
                   (unsigned long long)dlen,
                   (unsigned long long)f->max_message);
    *payload = dlen;
    return 0;
}

static int header_done(struct raftframe *f)
{
    uint64_t payload = 0;
    int rv = 0;
    if (f->pre[0] == T_APPEND_ENTRIES)
        rv = check_append_entries(f, &payload);
    else if (f->pre[0] == T_INSTALL_SNAPSHOT)
        rv = check_install_snapshot(f, &payload);
    if (rv != 0)
        return rv;
    f->payload_left = payload;
    return 0;
}

int raftframe_feed(struct raftframe *f, const uint8_t *data, size_t len,
                   raftframe_emit emit, void *arg)
{
    if (f->state == ST_DEAD)
        return ERR_MALFORMED;
    while (len > 0) {
        size_t take;
        switch (f->state) {
        case ST_PREAMBLE:
            take = sizeof f->pre - f->got;
            take = take < len ? take : len;
            memcpy(f->pre + f->got, data, take);
            f->got += take;
            data += take;
            len -= take;
            if (f->got < sizeof f->pre)
                break;
            {
                uint64_t hlen = le64(f->pre + 8);
                int rv = check_header_len(f, f->pre[0], f->pre[2], hlen);
                if (rv != 0)
                    return rv;
                f->header_len = (size_t)hlen;
                f->got = 0;
                f->state = ST_HEADER;
            }
            break;
        case ST_HEADER:
            take = f->header_len - f->got;
            take = take < len ? take : len;
            memcpy(f->header + f->got, data, take);
            f->got += take;
            data += take;
            len -= take;
            if (f->got < f->header_len)
                break;
            {
                int rv = header_done(f);
                if (rv != 0)
                    return rv;
                emit(arg, f->pre, sizeof f->pre);
                emit(arg, f->header, f->header_len);
                f->got = 0;
                f->messages++;
                f->state = f->payload_left ? ST_PAYLOAD : ST_PREAMBLE;
            }
            break;
        case ST_PAYLOAD:
            take = f->payload_left < len ? (size_t)f->payload_left : len;
            emit(arg, data, take);
            f->payload_left -= take;
            data += take;
            len -= take;
            if (f->payload_left == 0)
                f->state = ST_PREAMBLE;
            break;
        default:
            return ERR_MALFORMED;
        }
    }
    return 0;
}
