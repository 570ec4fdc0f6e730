/* version.h - the release version and on-disk/wire format versions. */
#ifndef NFTRAFT_VERSION_H
#define NFTRAFT_VERSION_H
#define NFTRAFT_VERSION "0.1.0"
#endif
