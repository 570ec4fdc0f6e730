/* kmsauth.h - `nftraft kms-auth`: flags and environment of dstack's KMS
 * auth webhook (dstack/kmsauth.h), served until SIGINT/SIGTERM. */
#ifndef NFTRAFT_CMD_KMSAUTH_H
#define NFTRAFT_CMD_KMSAUTH_H

/* `nftraft kms-auth ...` (argv[0] is the command): returns the exit code
 * (0 clean stop, 1 start-up error, 2 bad usage). */
int kmsauth_cmd(int argc, char **argv);

#endif
