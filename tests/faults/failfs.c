/* An LD_PRELOAD shim that makes storage fail on demand, for process-level tests.
 *
 * Only files whose path starts with $FAILFS_PREFIX are affected. While the file
 * named by $FAILFS_FSYNC exists, fsync and fdatasync on them fail with EIO;
 * while the file named by $FAILFS_FULL exists, writes to them fail with ENOSPC.
 * Built by tests/e2e/test_storage_faults.py with the system C compiler. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static int triggered(const char *env) {
    const char *path = getenv(env);
    struct stat st;
    return path != NULL && stat(path, &st) == 0;
}

static int affected(int fd) {
    const char *prefix = getenv("FAILFS_PREFIX");
    char link[64], target[PATH_MAX];
    if (prefix == NULL) return 0;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n < 0) return 0;
    target[n] = '\0';
    return strncmp(target, prefix, strlen(prefix)) == 0;
}

#define REAL(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))

int fsync(int fd) {
    if (triggered("FAILFS_FSYNC") && affected(fd)) { errno = EIO; return -1; }
    return REAL(fsync)(fd);
}

int fdatasync(int fd) {
    if (triggered("FAILFS_FSYNC") && affected(fd)) { errno = EIO; return -1; }
    return REAL(fdatasync)(fd);
}

ssize_t write(int fd, const void *buf, size_t count) {
    if (triggered("FAILFS_FULL") && affected(fd)) { errno = ENOSPC; return -1; }
    return REAL(write)(fd, buf, count);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
    if (triggered("FAILFS_FULL") && affected(fd)) { errno = ENOSPC; return -1; }
    return REAL(pwrite)(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset) {
    if (triggered("FAILFS_FULL") && affected(fd)) { errno = ENOSPC; return -1; }
    return REAL(pwrite64)(fd, buf, count, offset);
}
