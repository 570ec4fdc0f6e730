/* dataid.c - the raft id a data dir belongs to (see dataid.h). */
#include "core/dataid.h"
#include "core/err.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DATAID_FILE "raft-id"

int dataid_read(const char *dir, uint64_t *id)
{
    char path[600], buf[32];
    snprintf(path, sizeof path, "%s/" DATAID_FILE, dir);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return errno == ENOENT ? ERR_NOTFOUND : ERR_IO;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *end;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    if (n == 0 || errno != 0 || end == buf || (*end != '\n' && *end) ||
        (*end == '\n' && end[1] != '\0') || v == 0 || buf[0] == '-')
        return ERR_CORRUPT;
    *id = v;
    return 0;
}

/* Write DATA_DIR/raft-id atomically. */
static int write_id(const char *dir, uint64_t id, char *errmsg, size_t errlen)
{
    char path[600], tmp[610], line[32];
    snprintf(path, sizeof path, "%s/" DATAID_FILE, dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int len = snprintf(line, sizeof line, "%" PRIu64 "\n", id);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    bool ok = fd >= 0 && write(fd, line, (size_t)len) == len && fsync(fd) == 0;
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(errmsg, errlen, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return ERR_IO;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

/* A file of the node's state: raft's (metadata1/2, open-N, closed segments
 * N-M, snapshot-*), the state machine's (state.db and its -wal/-shm) and
 * its raft-id file. The cached member view (the contract's, not this
 * server's), logs, keys, LOCK and old-* stay. */
static bool is_state(const char *name)
{
    if (strcmp(name, "metadata1") == 0 || strcmp(name, "metadata2") == 0 ||
        strncmp(name, "open-", 5) == 0 || strncmp(name, "snapshot-", 9) == 0 ||
        strncmp(name, "state.db", 8) == 0 || strcmp(name, DATAID_FILE) == 0)
        return true;
    size_t d1 = strspn(name, "0123456789");
    return d1 > 0 && name[d1] == '-' &&
           name[d1 + 1 + strspn(name + d1 + 1, "0123456789")] == '\0' &&
           name[d1 + 1] != '\0';
}

/* Whether dir holds raft or state-machine state. */
static bool has_state(const char *dir)
{
    DIR *dp = opendir(dir);
    if (dp == NULL)
        return false;
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(dp)) != NULL)
        found = is_state(e->d_name) && strcmp(e->d_name, DATAID_FILE) != 0;
    closedir(dp);
    return found;
}

/* Move every state file of dir into aside (created). */
static int move_aside(const char *dir, const char *aside, char *errmsg,
                      size_t errlen)
{
    if (mkdir(aside, 0755) != 0) {
        snprintf(errmsg, errlen, "cannot create %s: %s", aside,
                 strerror(errno));
        return ERR_IO;
    }
    DIR *dp = opendir(dir);
    if (dp == NULL) {
        snprintf(errmsg, errlen, "cannot list %s: %s", dir, strerror(errno));
        return ERR_IO;
    }
    int rv = 0;
    struct dirent *e;
    while (rv == 0 && (e = readdir(dp)) != NULL) {
        if (!is_state(e->d_name))
            continue;
        char from[600], to[900];
        snprintf(from, sizeof from, "%s/%s", dir, e->d_name);
        snprintf(to, sizeof to, "%s/%s", aside, e->d_name);
        if (rename(from, to) != 0) {
            snprintf(errmsg, errlen, "cannot move %s to %s: %s", from, to,
                     strerror(errno));
            rv = ERR_IO;
        }
    }
    closedir(dp);
    return rv;
}

int dataid_claim(const char *dir, uint64_t id, bool *moved, uint64_t *old_id,
                 char *aside, size_t aside_len, char *errmsg, size_t errlen)
{
    *moved = false;
    *old_id = 0;
    if (aside_len > 0)
        aside[0] = '\0';
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(errmsg, errlen, "cannot create %s: %s", dir, strerror(errno));
        return ERR_IO;
    }
    char lock[600];
    snprintf(lock, sizeof lock, "%s/LOCK", dir);
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(errmsg, errlen, "cannot open %s: %s", lock, strerror(errno));
        return ERR_IO;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(errmsg, errlen, "data dir %s is in use by another process",
                 dir);
        close(fd);
        return ERR_BUSY;
    }
    uint64_t old = 0;
    int rv = dataid_read(dir, &old);
    if (rv == ERR_CORRUPT || rv == ERR_IO) {
        snprintf(errmsg, errlen,
                 "%s/" DATAID_FILE " is unreadable or not a raft id", dir);
        close(fd);
        return rv;
    }
    *old_id = rv == 0 ? old : 0;
    if (rv == 0 && old == id) {
        close(fd);
        return 0;
    }
    if (rv == ERR_NOTFOUND && !has_state(dir)) {
        rv = write_id(dir, id, errmsg, errlen);
        close(fd);
        return rv;
    }
    /* Another server's state, or one from before raft-id files (then the
     * raft id was the bare token). */
    snprintf(aside, aside_len, "%s/old-%" PRIu64 "-%lld", dir,
             *old_id ? *old_id : id >> 32, (long long)time(NULL));
    rv = move_aside(dir, aside, errmsg, errlen);
    if (rv == 0)
        rv = write_id(dir, id, errmsg, errlen);
    *moved = rv == 0;
    close(fd);
    return rv;
}
