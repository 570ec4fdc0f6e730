/* raftframe.h - checks raft_uv_tcp's message framing before raft sees it.
 *
 * raft 0.22.1's decoder trusts the lengths and counts a peer sends (a short
 * AppendEntries header makes it read past its buffer and walk a NULL entry
 * array), so every byte an accepted raft connection carries passes through
 * this checker first. It parses the stream incrementally, message by
 * message:
 *
 *   preamble  u64 LE: byte 0 type (1..6), byte 2 version; u64 LE header length
 *   header    the type's fixed fields (AppendEntries: a batch header of n
 *             entries; InstallSnapshot: an encoded configuration)
 *   payload   AppendEntries: the entries' data; InstallSnapshot: its data
 *
 * and holds each preamble and header until they are known good, so only
 * well-formed messages reach raft: header lengths within the bounds raft's
 * decoder reads for that type and version, entry counts and payload lengths
 * consistent with the header and capped, entry types known, entry sizes
 * non-zero multiples of 8 (raft's decoder walks them padded), snapshot
 * configurations fully inside their header. Anything else is an error and
 * the connection is to be closed. Pure code: no I/O, no allocation. */
#ifndef NFTRAFT_RAFTFRAME_H
#define NFTRAFT_RAFTFRAME_H

#include <stddef.h>
#include <stdint.h>

#define RAFTFRAME_MAX_ENTRIES 65536 /* entries in one AppendEntries */
#define RAFTFRAME_MAX_SERVERS 1024  /* servers in a snapshot configuration */
#define RAFTFRAME_ADDRESS_MAX 256   /* bytes of one server address, NUL too */
/* Longest header: an AppendEntries batch header of RAFTFRAME_MAX_ENTRIES. */
#define RAFTFRAME_HEADER_MAX (48 + 16 * RAFTFRAME_MAX_ENTRIES)

/* Receives checked bytes, in stream order. */
typedef void (*raftframe_emit)(void *arg, const uint8_t *bytes, size_t n);

struct raftframe {
    uint64_t max_message; /* cap on one message's payload bytes */
    int state;            /* what the next bytes are */
    uint8_t pre[16];      /* the preamble being read */
    size_t got;           /* bytes of preamble or header held */
    size_t header_len;
    uint64_t payload_left; /* payload bytes still to pass through */
    uint64_t messages;     /* messages checked so far */
    char errmsg[128];      /* why the stream was refused */
    uint8_t header[RAFTFRAME_HEADER_MAX];
};

/* Start checking a new stream; max_message caps one message's payload
 * (0 = 64 MiB). f is about 1 MiB: allocate it, don't put it on a stack. */
void raftframe_init(struct raftframe *f, uint64_t max_message);

/* Check len more bytes of the stream. Checked bytes go to emit (zero or
 * more calls, in order; a preamble and header only once the whole header
 * is known good, payload bytes as they come). Returns 0, or ERR_MALFORMED
 * with f->errmsg set; after an error the stream is dead (every later call
 * fails the same way) and nothing of the bad message was emitted. */
int raftframe_feed(struct raftframe *f, const uint8_t *data, size_t len,
                   raftframe_emit emit, void *arg);

#endif
