/* err.h - the project-wide error codes.
 *
 * Every function that can fail returns 0 or one of these negative codes; the
 * human-readable detail goes into the errmsg buffer of the object that failed
 * (raft's convention). err_str() names a code for logs and JSON errors. */
#ifndef NFTRAFT_ERR_H
#define NFTRAFT_ERR_H

enum {
    ERR_OK = 0,
    ERR_NOMEM = -1,      /* allocation failed */
    ERR_INVALID = -2,    /* bad argument or bad input from a user */
    ERR_MALFORMED = -3,  /* bytes that do not decode (wire, disk, RPC) */
    ERR_IO = -4,         /* file or socket error */
    ERR_CORRUPT = -5,    /* on-disk state that fails its checks */
    ERR_OVERFLOW = -6,   /* arithmetic would leave int64/uint256 range */
    ERR_NOTFOUND = -7,   /* no such key, path, entry */
    ERR_BUSY = -8,       /* resource held elsewhere (lock, data dir) */
    ERR_TIMEOUT = -9,    /* a deadline passed */
    ERR_NOTLEADER = -10, /* operation needs the raft leader */
    ERR_UNKNOWN = -11,   /* outcome unknown (leadership lost mid-write) */
    ERR_RPC = -12,       /* JSON-RPC transport or protocol error */
    ERR_REVERT = -13,    /* contract call reverted */
    ERR_VERSION = -14,   /* a format version this build cannot read */
    ERR_SHUTDOWN = -15,  /* the node is closing */
    ERR_TOOBIG = -16,    /* input above a size limit */
    ERR_INTERNAL = -17,  /* a bug: an invariant did not hold */
    ERR_DENIED = -18,    /* not authorized (e.g. a raft peer's key) */
};

/* A short static name for an error code ("invalid", "io", ...). */
const char *err_str(int code);

#endif
