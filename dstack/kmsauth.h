/* kmsauth.h - `nftraft kms-auth`: dstack's KMS auth webhook (the API of
 * auth-eth / auth-eth-bun) over the project's chain client, and --mock
 * (auth-mock). */
#ifndef NFTRAFT_KMSAUTH_H
#define NFTRAFT_KMSAUTH_H

/* Parse flags and env, serve until SIGINT/SIGTERM; returns the exit code
 * (0 clean stop, 1 start-up error, 2 bad usage). */
int kmsauth_main(int argc, char **argv);

#endif
