/* pgexec.c - nftraft-pgexec: the exec helper every PostgreSQL program of a
 * node runs through, so nothing of it runs as root and nothing outlives
 * the node.
 *
 *   nftraft-pgexec [--user NAME] [--parent PID] -- PROGRAM ARGS...
 *
 * When root and --user is given: setgid, initgroups, setuid to NAME (HOME,
 * USER, LOGNAME follow). Not root: --user must name the current user. Then
 * PR_SET_PDEATHSIG(SIGKILL) (after the uid change, which would clear it);
 * if the parent is no longer --parent (it died before that), exit 1; then
 * execv(PROGRAM) (an absolute path). Exit status 127 when it cannot. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <unistd.h>

static int usage(void)
{
    fprintf(stderr, "usage: nftraft-pgexec [--user NAME] [--parent PID] -- "
                    "PROGRAM ARGS...\n");
    return 2;
}

static int become(const char *name)
{
    struct passwd *pw = getpwnam(name);
    if (pw == NULL) {
        fprintf(stderr, "nftraft-pgexec: unknown user %s\n", name);
        return -1;
    }
    if (geteuid() == 0) {
        if (setgid(pw->pw_gid) != 0 || initgroups(name, pw->pw_gid) != 0 ||
            setuid(pw->pw_uid) != 0) {
            fprintf(stderr, "nftraft-pgexec: cannot become %s: %s\n", name,
                    strerror(errno));
            return -1;
        }
        if (getuid() == 0 && pw->pw_uid != 0) {
            fprintf(stderr, "nftraft-pgexec: still root after setuid\n");
            return -1;
        }
    } else if (pw->pw_uid != geteuid()) {
        fprintf(stderr, "nftraft-pgexec: not root: cannot run as %s\n", name);
        return -1;
    }
    setenv("HOME", pw->pw_dir, 1);
    setenv("USER", pw->pw_name, 1);
    setenv("LOGNAME", pw->pw_name, 1);
    return 0;
}

int main(int argc, char **argv)
{
    const char *user = NULL;
    long parent = 0;
    int i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        } else if (strcmp(argv[i], "--user") == 0 && i + 1 < argc) {
            user = argv[++i];
        } else if (strcmp(argv[i], "--parent") == 0 && i + 1 < argc) {
            char *end;
            parent = strtol(argv[++i], &end, 10);
            if (*end != '\0' || parent <= 0)
                return usage();
        } else {
            return usage();
        }
    }
    if (i >= argc || argv[i][0] != '/')
        return usage();
    if (user != NULL && become(user) != 0)
        return 127;
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
        fprintf(stderr, "nftraft-pgexec: prctl: %s\n", strerror(errno));
        return 127;
    }
    if (parent != 0 && getppid() != (pid_t)parent)
        return 1; /* the node died before the death signal was armed */
    execv(argv[i], &argv[i]);
    fprintf(stderr, "nftraft-pgexec: cannot run %s: %s\n", argv[i],
            strerror(errno));
    return 127;
}
