/* compose.h - `nftraft compose-hash`: dstack's compose hash of an
 * app-compose file, or of the app-compose built around a docker-compose
 * file (the hashing itself is dstack/compose.h). */
#ifndef NFTRAFT_CMD_COMPOSE_H
#define NFTRAFT_CMD_COMPOSE_H

/* `nftraft compose-hash ...` (argv[0] is the command): returns the exit
 * code (0, 1 unreadable file or invalid JSON, 2 bad usage). */
int compose_cmd(int argc, char **argv);

#endif
