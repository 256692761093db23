/* The floor of a no-op: exec, read the installed version from the package
 * database once, two loopback GETs (/version and /critical), stat the
 * agent's executables, compare, exit. What any updater must at least do;
 * built by the bench with gcc -O2.
 *
 *   floor PORT CHANNEL DATABASE PACKAGE EXECUTABLE...
 *
 * DATABASE is dpkg's `status` (read whole, the package's stanza found), or
 * with -DFLOOR_RPM (linked with -lsqlite3) rpm's `rpmdb.sqlite`: opened
 * read-only, the package's header found through rpm's `Name` index (one
 * indexed lookup, as `rpm -q` does) and its VERSION tag read from the
 * header blob; nothing else of the database is read.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static int get(int port, const char *path, char *out, size_t cap) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(0x7f000001);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) != 0) return -1;
    char req[1024];
    int l = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (write(s, req, (size_t)l) != l) return -1;
    size_t got = 0;
    ssize_t r;
    while (got < cap - 1 && (r = read(s, out + got, cap - 1 - got)) > 0) got += (size_t)r;
    out[got] = 0;
    close(s);
    if (strncmp(out, "HTTP/1.", 7) != 0 || strncmp(out + 9, "200", 3) != 0) return -1;
    char *body = strstr(out, "\r\n\r\n");
    if (!body) return -1;
    memmove(out, body + 4, strlen(body + 4) + 1);
    out[strcspn(out, "\r\n")] = 0;
    return 0;
}

#ifdef FLOOR_RPM
#include <sqlite3.h>

/* The VERSION (tag 1001, a string) of `package`'s header in the rpmdb
 * `db`, copied into `out`. A header blob: il, dl (big-endian int32), il
 * entries of (tag, type, offset, count), then dl bytes of data. */
static int installed(const char *db, const char *package, char *out, size_t cap) {
    sqlite3 *h;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) return -1;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(h, "SELECT p.blob FROM Packages p JOIN Name n ON n.hnum = p.hnum WHERE n.key = ?",
                           -1, &q, NULL) != SQLITE_OK) return -1;
    sqlite3_bind_text(q, 1, package, -1, SQLITE_STATIC);
    int rc = -1;
    if (sqlite3_step(q) == SQLITE_ROW) {
        const unsigned char *b = sqlite3_column_blob(q, 0);
        int n = sqlite3_column_bytes(q, 0);
        uint32_t il = n >= 8 ? ntohl(*(const uint32_t *)b) : 0;
        const unsigned char *data = b + 8 + 16 * (size_t)il;
        for (uint32_t i = 0; i < il && 8 + 16 * (size_t)il <= (size_t)n; i++) {
            const uint32_t *e = (const uint32_t *)(b + 8 + 16 * (size_t)i);
            if (ntohl(e[0]) != 1001 || ntohl(e[1]) != 6) continue;
            uint32_t off = ntohl(e[2]);
            if (data + off >= b + n) break;
            snprintf(out, cap, "%.*s", (int)(b + n - (data + off)), (const char *)(data + off));
            rc = 0;
            break;
        }
    }
    sqlite3_finalize(q);
    sqlite3_close(h);
    return rc;
}
#else
/* The Version of `package`'s stanza in dpkg's `status` (read whole). */
static int installed(const char *status, const char *package, char *out, size_t cap) {
    int fd = open(status, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) return -1;
    /* a leading newline, so that the first paragraph matches too */
    char *db = malloc((size_t)st.st_size + 2);
    db[0] = '\n';
    size_t got = 0;
    ssize_t r;
    while (got < (size_t)st.st_size && (r = read(fd, db + 1 + got, (size_t)st.st_size - got)) > 0) got += (size_t)r;
    db[got + 1] = 0;
    close(fd);
    char needle[256];
    snprintf(needle, sizeof needle, "\nPackage: %s\n", package);
    char *p = strstr(db, needle);
    char *v = p ? strstr(p, "\nVersion: ") : NULL;
    char *end = p ? strstr(p + 1, "\n\n") : NULL;
    if (!v || (end && v > end)) return -1;
    v += 10;
    v[strcspn(v, "\n")] = 0;
    snprintf(out, cap, "%s", v);
    free(db);
    return 0;
}
#endif

int main(int argc, char **argv) {
    if (argc < 5) return 2;
    int port = atoi(argv[1]);
    struct stat st;
    char v[4096];
    if (installed(argv[3], argv[4], v, sizeof v) != 0) return 4;
    char path[1024], version[4096], critical[4096];
    snprintf(path, sizeof path, "%s/version", argv[2]);
    if (get(port, path, version, sizeof version) != 0) return 5;
    snprintf(path, sizeof path, "%s/critical", argv[2]);
    if (get(port, path, critical, sizeof critical) != 0) return 5;
    for (int i = 5; i < argc; i++)
        if (stat(argv[i], &st) != 0) return 6;
    const char *target = version[0] == 'v' ? version + 1 : version;
    if (strcmp(target, v) != 0) return 7;
    printf("up to date (%s)\n", v);
    return 0;
}
