/* fuzz_raftframe.c - net/raftframe, the checker every byte of an accepted
 * raft connection passes before raft decodes it. The input is a raft
 * stream; it is fed twice, whole and in chunks whose sizes come from the
 * input itself. Properties: the checker passes bytes through unchanged and
 * in order (what it emits is a prefix of the input), the split does not
 * change the outcome or the bytes emitted, a refused stream stays refused
 * and emits nothing more. */
#include "core/err.h"
#include "net/raftframe.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct sink {
    const uint8_t *in;
    size_t n;
    size_t in_len;
};

static void emit(void *arg, const uint8_t *b, size_t n)
{
    struct sink *s = arg;
    if (s->n + n > s->in_len || memcmp(s->in + s->n, b, n) != 0)
        abort(); /* emitted bytes must be the input's, in order */
    s->n += n;
}

static struct raftframe whole, split;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    raftframe_init(&whole, 1 << 20);
    raftframe_init(&split, 1 << 20);
    struct sink a = {data, 0, size}, b = {data, 0, size};
    int ra = raftframe_feed(&whole, data, size, emit, &a);
    int rb = 0;
    size_t off = 0, step = size ? (size_t)data[0] % 61 + 1 : 1;
    while (off < size && rb == 0) {
        size_t k = size - off < step ? size - off : step;
        rb = raftframe_feed(&split, data + off, k, emit, &b);
        off += k;
        step = step * 7 % 61 + 1;
    }
    if (ra != rb || a.n != b.n || whole.messages != split.messages)
        abort(); /* the split must not matter */
    if (ra != 0) {
        size_t before = a.n;
        if (raftframe_feed(&whole, data, size, emit, &a) != ERR_MALFORMED ||
            a.n != before)
            abort(); /* a refused stream stays refused */
    }
    return 0;
}
