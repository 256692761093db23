/* The floor of a no-op: exec, read dpkg's status once, two loopback GETs
 * (/version and /critical), stat the agent's executables, compare, exit.
 * What any updater must at least do; built by the bench with gcc -O2.
 *
 *   floor PORT CHANNEL STATUS PACKAGE EXECUTABLE...
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
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

int main(int argc, char **argv) {
    if (argc < 5) return 2;
    int port = atoi(argv[1]);
    int fd = open(argv[3], O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) return 3;
    /* a leading newline, so that the first paragraph matches too */
    char *db = malloc((size_t)st.st_size + 2);
    db[0] = '\n';
    size_t got = 0;
    ssize_t r;
    while (got < (size_t)st.st_size && (r = read(fd, db + 1 + got, (size_t)st.st_size - got)) > 0) got += (size_t)r;
    db[got + 1] = 0;
    close(fd);
    char needle[256];
    snprintf(needle, sizeof needle, "\nPackage: %s\n", argv[4]);
    char *p = strstr(db, needle);
    char *v = p ? strstr(p, "\nVersion: ") : NULL;
    char *end = p ? strstr(p + 1, "\n\n") : NULL;
    if (!v || (end && v > end)) return 4;
    v += 10;
    v[strcspn(v, "\n")] = 0;
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
