/* membership.c - the membership contract's typed binding. */
#include "chain/membership.h"
#include "chain/abi.h"
#include "chain/hex.h"
#include "core/err.h"

#include <stdbool.h>
#include <string.h>

int membership_instance_id(const char *s, uint8_t out[32])
{
    memset(out, 0, 32);
    size_t n = strlen(s);
    if (n == 0)
        return ERR_INVALID;
    if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        size_t got;
        return hex_decode(s, n, out, 32, &got) == 0 ? 0 : ERR_INVALID;
    }
    if (n > 32)
        return ERR_INVALID;
    memcpy(out, s, n);
    return 0;
}

void membership_instance_text(const uint8_t id[32], char out[67])
{
    size_t k = 0;
    while (k < 32 && id[k] > 0x20 && id[k] < 0x7f)
        k++;
    bool named = k > 0 && !(k >= 2 && id[0] == '0' &&
                            (id[1] == 'x' || id[1] == 'X'));
    for (size_t i = k; i < 32 && named; i++)
        named = id[i] == 0;
    if (named) {
        memcpy(out, id, k);
        out[k] = '\0';
    } else {
        hex_encode(id, 32, 1, out);
    }
}

int membership_decode_nodes(const uint8_t *d, size_t len,
                          struct membership_node *out, size_t cap, size_t *n)
{
    const uint8_t *heads;
    size_t count;
    if (abi_get_words(d, len, 0, &heads, &count) != 0)
        return ERR_MALFORMED;
    if (count > cap)
        return ERR_TOOBIG;
    size_t room = (size_t)(d + len - heads); /* bytes from the array start */
    for (size_t i = 0; i < count; i++) {
        uint64_t off, epoch;
        if (abi_get_uint64(heads, room, i, &off) != 0 || off >= room)
            return ERR_MALFORMED;
        const uint8_t *t = heads + off;
        size_t tl = room - (size_t)off;
        struct membership_node *m = &out[i];
        int rv;
        if (abi_get_uint64(t, tl, 0, &m->token) != 0 ||
            abi_get_bytes32(t, tl, 1, m->instance) != 0 ||
            abi_get_address(t, tl, 2, m->owner) != 0 ||
            abi_get_address(t, tl, 3, m->node_key) != 0 ||
            abi_get_uint64(t, tl, 4, &epoch) != 0 || epoch > UINT32_MAX)
            return ERR_MALFORMED;
        m->epoch = (uint32_t)epoch;
        if ((rv = abi_get_string(t, tl, 5, m->raft, sizeof m->raft)) != 0 ||
            (rv = abi_get_string(t, tl, 6, m->http, sizeof m->http)) != 0)
            return rv == ERR_TOOBIG ? ERR_TOOBIG : ERR_MALFORMED;
    }
    *n = count;
    return 0;
}

