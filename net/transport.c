/* transport.c - raft transport selection (uv TCP today). */
#include "net/transport.h"
#include "core/err.h"
#include "core/log.h"

#include <raft.h>

int transport_init(struct raft_uv_transport *t, uv_loop_t *loop)
{
    int rv = raft_uv_tcp_init(t, loop);
    if (rv != 0) {
        LOGE("net", "raft tcp transport: %s", raft_strerror(rv));
        return rv == RAFT_NOMEM ? ERR_NOMEM : ERR_IO;
    }
    return 0;
}

void transport_free(struct raft_uv_transport *t)
{
    raft_uv_tcp_close(t);
}
