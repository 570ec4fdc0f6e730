/* err.c - names for the project-wide error codes. */
#include "core/err.h"

const char *err_str(int code)
{
    switch (code) {
    case ERR_OK:
        return "ok";
    case ERR_NOMEM:
        return "out of memory";
    case ERR_INVALID:
        return "invalid";
    case ERR_MALFORMED:
        return "malformed";
    case ERR_IO:
        return "i/o error";
    case ERR_CORRUPT:
        return "corrupt";
    case ERR_OVERFLOW:
        return "overflow";
    case ERR_NOTFOUND:
        return "not found";
    case ERR_BUSY:
        return "busy";
    case ERR_TIMEOUT:
        return "timeout";
    case ERR_NOTLEADER:
        return "not leader";
    case ERR_UNKNOWN:
        return "outcome unknown";
    case ERR_RPC:
        return "rpc error";
    case ERR_REVERT:
        return "reverted";
    case ERR_VERSION:
        return "unsupported version";
    case ERR_SHUTDOWN:
        return "shutting down";
    case ERR_TOOBIG:
        return "too big";
    case ERR_INTERNAL:
        return "internal error";
    case ERR_DENIED:
        return "denied";
    }
    return "unknown error";
}
