/* fuzz_abi.c - contract return data from an untrusted RPC through every
 * chain/abi.c decoder at the first head slots, and revert data through
 * abi_revert_reason (its text must stay inside its buffer), and through
 * the membership contract's decoders (chain/membership). */
#include "chain/abi.h"
#include "chain/membership.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t len)
{
    for (size_t slot = 0; slot < 4; slot++) {
        bool b;
        uint64_t u;
        uint8_t a[20], w[32];
        char s[64];
        (void)abi_get_bool(d, len, slot, &b);
        (void)abi_get_uint64(d, len, slot, &u);
        (void)abi_get_address(d, len, slot, a);
        (void)abi_get_bytes32(d, len, slot, w);
        if (abi_get_string(d, len, slot, s, sizeof s) == 0 &&
            memchr(s, '\0', sizeof s) == NULL)
            abort();
        const uint8_t *words;
        size_t n;
        if (abi_get_words(d, len, slot, &words, &n) == 0 && n > 0 &&
            (words < d || words + 32 * n > d + len))
            abort(); /* the words must lie inside the data */
    }
    static struct membership_node m[4];
    size_t n = 99;
    if (membership_decode_nodes(d, len, m, 4, &n) == 0 &&
        (n > 4 ||
         (n > 0 && (memchr(m[n - 1].raft, '\0', sizeof m[0].raft) == NULL ||
                    m[n - 1].token == 0))))
        abort();
    n = 99;
    if (membership_decode_members_v1(d, len, m, 4, &n) == 0 && n > 4)
        abort();
    struct membership_state st;
    struct membership_vote v;
    (void)membership_decode_state(d, len, &st);
    (void)membership_decode_vote(d, len, &v);
    char reason[96];
    abi_revert_reason(d, len, reason, sizeof reason);
    if (memchr(reason, '\0', sizeof reason) == NULL)
        abort();
    return 0;
}
