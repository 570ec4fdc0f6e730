/* tx.h - Ethereum transactions: EIP-1559 (type 2) and EIP-155 legacy,
 * signed with a wallet into raw bytes for eth_sendRawTransaction. */
#ifndef NFTRAFT_TX_H
#define NFTRAFT_TX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct wallet;

struct tx {
    bool legacy; /* EIP-155 legacy instead of EIP-1559 */
    uint64_t chain_id, nonce, gas_limit;
    uint64_t max_fee;          /* type 2: maxFeePerGas; legacy: gasPrice */
    uint64_t max_priority_fee; /* type 2 only */
    uint8_t to[20];
    uint64_t value;
    const uint8_t *data;
    size_t data_len;
};

/* Sign tx; *raw (malloc'd, caller frees) gets the signed encoding and
 * hash[32] the transaction hash. ERR_NOMEM, ERR_INVALID. */
int tx_sign(const struct tx *tx, const struct wallet *w, uint8_t **raw,
            size_t *len, uint8_t hash[32]);

#endif
