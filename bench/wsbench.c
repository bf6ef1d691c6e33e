/*
 * wsbench: the load generator and the VNC-side target of scripts/bench-proxy.
 *
 * Compiled so that the proxy under test, not the client, is the bottleneck. Blocking sockets, one
 * thread per connection, OpenSSL for TLS. The client side speaks what a browser's noVNC speaks: TLS,
 * the WebSocket upgrade with a ticket in the path and an Origin header, masked binary frames.
 *
 * Every byte relayed is checked: both ends know the same pseudo-random stream (period PERIOD, a prime,
 * so no power-of-two buffer inside a proxy lines up with it and a stale or skipped buffer shows).
 *
 *   wsbench target                 listen on four loopback ports, print "ports source=P sink=P echo=P greet=P"
 *   wsbench down|up|rtt|connect|idle|hold|rate --port P [--ca FILE] [--tickets FILE] [--conns N] [--bytes N]
 *           [--count N] [--cpu-pid PID] [--pause 1] [--chunk N] [--interval-ms N] [--rate N] [--metrics-every N]
 *
 * The target's ports: source (reads an 8-byte big-endian count, sends that many stream bytes), sink
 * (reads a count and that many bytes, checks them, answers 'K' or 'X'), echo, greet (sends an RFB
 * greeting and waits). Without --ca the client speaks raw TCP to the port (the baseline).
 * Each client mode prints one line "result key=value ..."; any error is one line on stderr, exit 2.
 * down/up --pause 1: print "connected" once every connection is open and wait for a line on stdin before
 * the clock starts (the caller looks at the proxy's sockets). hold and rate run until a line "stop" (or
 * EOF) on stdin and count a failed connection instead of stopping: see their comments.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PERIOD 65521
#define CHUNK (256 * 1024)
#define GREETING "RFB 003.008\n"
#define RTT_SIZE 100

static unsigned char pattern[PERIOD + CHUNK]; /* pattern[i] == pattern[i % PERIOD] */

/* Set by a thread of hold or rate: die() then records its message here and ends only that thread
   (which holds no lock when it can fail), so one failed connection is counted, not fatal. */
#define ERR_LEN 240
static __thread char *soft_err;
static __thread void (*soft_exit)(void);

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (soft_err) {
        vsnprintf(soft_err, ERR_LEN, fmt, ap);
        va_end(ap);
        soft_exit();
        pthread_exit(NULL);
    }
    fputs("wsbench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void fill_pattern(void) {
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < PERIOD; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        pattern[i] = (unsigned char)(x >> 24);
    }
    for (size_t i = PERIOD; i < sizeof pattern; i++)
        pattern[i] = pattern[i - PERIOD];
}

/* Does p[0..n) equal the stream at offset off? */
static int matches(const unsigned char *p, size_t n, long long off) {
    while (n > 0) {
        size_t k = n < PERIOD ? n : PERIOD;
        if (memcmp(p, pattern + off % PERIOD, k) != 0)
            return 0;
        p += k;
        n -= k;
        off += (long long)k;
    }
    return 1;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double self_cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* CPU seconds of a process and all its descendants, reaped ones included (cutime, cstime). A live
   thread's time comes from its schedstat (nanoseconds) rather than utime+stime (clock ticks, 10 ms),
   unless threads that exited make the ticks larger. */
static double tree_cpu(int pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0.0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p)
        return 0.0;
    unsigned long long v[15] = {0};
    char *save = NULL, *tok = strtok_r(p + 1, " ", &save);
    for (int i = 0; tok && i < 15; i++, tok = strtok_r(NULL, " ", &save))
        v[i] = strtoull(tok, NULL, 10);
    double tick = (double)sysconf(_SC_CLK_TCK), ticks = (double)(v[11] + v[12]) / tick, threads = 0.0;
    double total = (double)(v[13] + v[14]) / tick;
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (!d)
        return total + ticks;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char tpath[320];
        unsigned long long ns;
        snprintf(tpath, sizeof tpath, "/proc/%d/task/%s/schedstat", pid, e->d_name);
        FILE *t = fopen(tpath, "r");
        if (t) {
            if (fscanf(t, "%llu", &ns) == 1)
                threads += (double)ns / 1e9;
            fclose(t);
        }
        snprintf(tpath, sizeof tpath, "/proc/%d/task/%s/children", pid, e->d_name);
        FILE *c = fopen(tpath, "r");
        if (!c)
            continue;
        int child;
        while (fscanf(c, "%d", &child) == 1)
            total += tree_cpu(child);
        fclose(c);
    }
    closedir(d);
    return total + (threads > ticks ? threads : ticks);
}

/* ------------------------------------------------------------------ options and tickets */
static struct {
    int port, conns, count, cpu_pid, pause, chunk, interval_ms, rate, metrics_every;
    long long bytes;
    const char *ca, *tickets;
} opt = {0, 1, 100, 0, 0, 1024, 20, 50, 4, 64LL << 20, NULL, NULL};

static SSL_CTX *ctx;
static char **ticket_list;
static size_t ticket_count, ticket_next;
static pthread_mutex_t ticket_lock = PTHREAD_MUTEX_INITIALIZER;

static void load_tickets(const char *file) {
    FILE *f = fopen(file, "r");
    if (!f)
        die("cannot read the tickets file %s: %s", file, strerror(errno));
    size_t cap = 0;
    char *line = NULL;
    size_t len = 0;
    ssize_t got;
    while ((got = getline(&line, &len, f)) > 0) {
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = 0;
        if (got == 0)
            continue;
        if (ticket_count == cap) {
            cap = cap ? cap * 2 : 64;
            ticket_list = realloc(ticket_list, cap * sizeof *ticket_list);
        }
        ticket_list[ticket_count++] = strdup(line);
    }
    free(line);
    fclose(f);
}

/* The request path: "/<ticket>", a new ticket for each connection (a ticket is used once). */
static const char *next_path(void) {
    if (!ticket_list)
        return "";
    pthread_mutex_lock(&ticket_lock);
    const char *t = ticket_next < ticket_count ? ticket_list[ticket_next++] : NULL;
    pthread_mutex_unlock(&ticket_lock);
    if (!t)
        die("more connections than tickets (%zu)", ticket_count);
    return t;
}

/* ------------------------------------------------------------------ one client connection */
typedef struct {
    int fd;
    SSL *ssl;
    unsigned char *buf;
    size_t cap, pos, len;
    long long frame_left; /* payload bytes still to come in the current data frame */
    int closed;           /* a close frame arrived */
} conn_t;

static size_t raw_read(conn_t *c, void *p, size_t n) {
    if (c->ssl) {
        int r = SSL_read(c->ssl, p, (int)n);
        if (r > 0)
            return (size_t)r;
        int err = SSL_get_error(c->ssl, r);
        if (err == SSL_ERROR_ZERO_RETURN)
            return 0;
        die("TLS read: %s", ERR_reason_error_string(ERR_get_error()) ?: strerror(errno));
    }
    for (;;) {
        ssize_t r = recv(c->fd, p, n, 0);
        if (r >= 0)
            return (size_t)r;
        if (errno == ECONNRESET)
            return 0;
        if (errno != EINTR)
            die("read: %s", strerror(errno));
    }
}

static void write_all(conn_t *c, const void *data, size_t n) {
    const unsigned char *p = data;
    while (n > 0) {
        if (c->ssl) {
            int r = SSL_write(c->ssl, p, (int)n);
            if (r <= 0)
                die("TLS write: %s", ERR_reason_error_string(ERR_get_error()) ?: strerror(errno));
            p += r;
            n -= (size_t)r;
        } else {
            ssize_t r = send(c->fd, p, n, MSG_NOSIGNAL);
            if (r < 0) {
                if (errno == EINTR)
                    continue;
                die("write: %s", strerror(errno));
            }
            p += r;
            n -= (size_t)r;
        }
    }
}

/* Read more into the buffer; 0 at the end of the stream. */
static size_t fill(conn_t *c) {
    if (c->pos == c->len)
        c->pos = c->len = 0;
    else if (c->len == c->cap) {
        memmove(c->buf, c->buf + c->pos, c->len - c->pos);
        c->len -= c->pos;
        c->pos = 0;
    }
    size_t n = raw_read(c, c->buf + c->len, c->cap - c->len);
    c->len += n;
    return n;
}

static void need(conn_t *c, size_t n) {
    while (c->len - c->pos < n)
        if (!fill(c))
            die("the connection closed in the middle of a frame");
}

/* A client frame: FIN, opcode, the mask bit and a fresh mask key. Returns its size. */
static size_t build_frame(unsigned char *out, const unsigned char *payload, size_t n, int opcode) {
    size_t h = 0;
    out[h++] = (unsigned char)(0x80 | opcode);
    if (n < 126)
        out[h++] = (unsigned char)(0x80 | n);
    else if (n < 65536) {
        out[h++] = 0x80 | 126;
        out[h++] = (unsigned char)(n >> 8);
        out[h++] = (unsigned char)n;
    } else {
        out[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            out[h++] = (unsigned char)((unsigned long long)n >> (8 * i));
    }
    unsigned char key[4];
    RAND_bytes(key, 4);
    memcpy(out + h, key, 4);
    h += 4;
    for (size_t i = 0; i < n; i++)
        out[h + i] = payload[i] ^ key[i & 3];
    return h + n;
}

static int is_ws(conn_t *c) { return c->ssl != NULL; }

/* The next piece of payload bytes (WebSocket) or stream bytes (raw TCP): points *p into the buffer.
   0 when the peer closed. Answers pings, skips pongs. */
static size_t read_data(conn_t *c, unsigned char **p) {
    for (;;) {
        if (!is_ws(c) || c->frame_left > 0) {
            if (c->pos == c->len && !fill(c)) {
                if (c->frame_left > 0)
                    die("the connection closed in the middle of a frame");
                return 0;
            }
            size_t n = c->len - c->pos;
            if (is_ws(c) && (long long)n > c->frame_left)
                n = (size_t)c->frame_left;
            *p = c->buf + c->pos;
            c->pos += n;
            if (is_ws(c))
                c->frame_left -= (long long)n;
            return n;
        }
        if (c->closed)
            return 0;
        if (c->pos == c->len && !fill(c))
            return 0;
        need(c, 2);
        unsigned char b0 = c->buf[c->pos], b1 = c->buf[c->pos + 1];
        if (b1 & 0x80)
            die("the server sent a masked frame");
        size_t hl = 2 + ((b1 & 0x7f) == 126 ? 2 : (b1 & 0x7f) == 127 ? 8 : 0);
        need(c, hl);
        unsigned long long length = b1 & 0x7f;
        if (length >= 126) {
            length = 0;
            for (size_t i = 2; i < hl; i++)
                length = length << 8 | c->buf[c->pos + i];
        }
        c->pos += hl;
        int opcode = b0 & 0x0f;
        if (opcode == 0 || opcode == 2) {
            c->frame_left = (long long)length;
            continue;
        }
        if (opcode == 1)
            die("the server sent a text frame (only the binary subprotocol is measured)");
        if (length > 125)
            die("a control frame longer than 125 bytes");
        need(c, (size_t)length);
        unsigned char control[125 + 14];
        memcpy(control, c->buf + c->pos, (size_t)length);
        c->pos += (size_t)length;
        if (opcode == 8) {
            c->closed = 1;
            return 0;
        }
        if (opcode == 9) {
            unsigned char frame[125 + 14];
            write_all(c, frame, build_frame(frame, control, (size_t)length, 10));
        }
    }
}

/* Read exactly n payload bytes into out. */
static void read_exact(conn_t *c, unsigned char *out, size_t n) {
    while (n > 0) {
        unsigned char *p;
        size_t got = read_data(c, &p);
        if (!got)
            die("the connection closed early");
        if (got > n)
            die("more bytes arrived than were sent");
        memcpy(out, p, got);
        out += got;
        n -= got;
    }
}

static void send_message(conn_t *c, const unsigned char *payload, size_t n) {
    if (!is_ws(c)) {
        write_all(c, payload, n);
        return;
    }
    unsigned char frame[RTT_SIZE + 14];
    if (n > RTT_SIZE)
        die("internal: message too long");
    write_all(c, frame, build_frame(frame, payload, n, 2));
}

static void upgrade(conn_t *c) {
    unsigned char nonce[16], digest[SHA_DIGEST_LENGTH];
    char key[32], accept[64], request[16384];
    RAND_bytes(nonce, sizeof nonce);
    EVP_EncodeBlock((unsigned char *)key, nonce, sizeof nonce);
    const char *path = next_path();
    int n = snprintf(request, sizeof request,
                     "GET /%s HTTP/1.1\r\nHost: localhost:%d\r\nOrigin: https://localhost:%d\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\n\r\n",
                     path, opt.port, opt.port, key);
    if (n >= (int)sizeof request)
        die("a ticket longer than %zu bytes", sizeof request - 300);
    write_all(c, request, (size_t)n);
    char *end;
    for (;;) {
        if (!fill(c))
            die("the server closed the connection during the upgrade");
        c->buf[c->len] = 0;
        if ((end = strstr((char *)c->buf, "\r\n\r\n")))
            break;
        if (c->len == c->cap)
            die("an upgrade response longer than %zu bytes", c->cap);
    }
    *end = 0;
    if (strncmp((char *)c->buf, "HTTP/1.1 101", 12) != 0) {
        char *eol = strstr((char *)c->buf, "\r\n");
        if (eol)
            *eol = 0;
        die("upgrade refused: %.200s", (char *)c->buf);
    }
    char joined[96];
    snprintf(joined, sizeof joined, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    SHA1((unsigned char *)joined, strlen(joined), digest);
    EVP_EncodeBlock((unsigned char *)accept, digest, sizeof digest);
    int ok = 0;
    for (char *line = strstr((char *)c->buf, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, "Sec-WebSocket-Accept:", 21) == 0) {
            char *v = line + 23;
            while (*v == ' ')
                v++;
            ok = strncmp(v, accept, strlen(accept)) == 0;
        }
    }
    if (!ok)
        die("the upgrade response has no or a wrong Sec-WebSocket-Accept");
    c->pos = (size_t)(end + 4 - (char *)c->buf);
}

/* TCP (and TLS) to the port, no upgrade. */
static conn_t *open_tcp(size_t cap) {
    conn_t *c = calloc(1, sizeof *c);
    c->cap = cap;
    c->buf = malloc(cap + 1);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0)
        die("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0)
        die("connect to port %d: %s", opt.port, strerror(errno));
    if (!ctx)
        return c;
    c->ssl = SSL_new(ctx);
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_tlsext_host_name(c->ssl, "localhost");
    SSL_set1_host(c->ssl, "localhost");
    if (SSL_connect(c->ssl) != 1)
        die("TLS handshake: %s", ERR_reason_error_string(ERR_get_error()) ?: "closed");
    return c;
}

static conn_t *open_conn(size_t cap) {
    conn_t *c = open_tcp(cap);
    if (c->ssl)
        upgrade(c);
    return c;
}

static void close_conn(conn_t *c) {
    if (c->ssl) {
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
    }
    close(c->fd);
    free(c->buf);
    free(c);
}

static void send_count(conn_t *c, unsigned long long count) {
    unsigned char be[8];
    for (int i = 0; i < 8; i++)
        be[i] = (unsigned char)(count >> (56 - 8 * i));
    send_message(c, be, 8);
}

/* ------------------------------------------------------------------ throughput */
static pthread_barrier_t connected, start_line;
static unsigned char *up_frame; /* the stream's first PERIOD bytes, as one masked frame (or raw) */
static size_t up_frame_len;
static char tls_name[128] = "none";
static pthread_mutex_t tls_name_lock = PTHREAD_MUTEX_INITIALIZER;

static void note_tls(conn_t *c) {
    if (!c->ssl)
        return;
    pthread_mutex_lock(&tls_name_lock);
    snprintf(tls_name, sizeof tls_name, "%s/%s", SSL_get_version(c->ssl), SSL_get_cipher(c->ssl));
    pthread_mutex_unlock(&tls_name_lock);
}

static void *down_worker(void *arg) {
    long long want = *(long long *)arg, off = 0;
    conn_t *c = open_conn(CHUNK);
    note_tls(c);
    pthread_barrier_wait(&connected);
    pthread_barrier_wait(&start_line);
    send_count(c, (unsigned long long)want);
    while (off < want) {
        unsigned char *p;
        size_t n = read_data(c, &p);
        if (!n)
            die("the relay closed after %lld of %lld bytes", off, want);
        if (off + (long long)n > want)
            die("more bytes arrived than were sent");
        if (!matches(p, n, off))
            die("the bytes relayed toward the client differ from what the target sent (near offset %lld)", off);
        off += (long long)n;
    }
    close_conn(c);
    return NULL;
}

static void *up_worker(void *arg) {
    long long want = *(long long *)arg;
    conn_t *c = open_conn(64 * 1024);
    note_tls(c);
    pthread_barrier_wait(&connected);
    pthread_barrier_wait(&start_line);
    send_count(c, (unsigned long long)want);
    for (long long sent = 0; sent < want; sent += PERIOD)
        write_all(c, up_frame, up_frame_len);
    unsigned char verdict;
    read_exact(c, &verdict, 1);
    if (verdict != 'K')
        die("the bytes relayed toward the target differ from what the client sent");
    close_conn(c);
    return NULL;
}

static void throughput(int down) {
    long long per = opt.bytes / opt.conns / PERIOD * PERIOD;
    if (per <= 0)
        per = PERIOD;
    if (!down) {
        up_frame = malloc(PERIOD + 14);
        up_frame_len = ctx ? build_frame(up_frame, pattern, PERIOD, 2) : (memcpy(up_frame, pattern, PERIOD), PERIOD);
    }
    pthread_t *threads = calloc((size_t)opt.conns, sizeof *threads);
    pthread_barrier_init(&connected, NULL, (unsigned)opt.conns + 1);
    pthread_barrier_init(&start_line, NULL, (unsigned)opt.conns + 1);
    for (int i = 0; i < opt.conns; i++)
        pthread_create(&threads[i], NULL, down ? down_worker : up_worker, &per);
    pthread_barrier_wait(&connected);
    if (opt.pause) {
        char line[16];
        printf("connected conns=%d\n", opt.conns);
        fflush(stdout);
        if (!fgets(line, sizeof line, stdin)) { /* EOF starts too */
        }
    }
    pthread_barrier_wait(&start_line);
    double peer0 = opt.cpu_pid ? tree_cpu(opt.cpu_pid) : 0, cpu0 = self_cpu(), t0 = now();
    for (int i = 0; i < opt.conns; i++)
        pthread_join(threads[i], NULL);
    double seconds = now() - t0, cpu = self_cpu() - cpu0;
    usleep(300 * 1000); /* a forking proxy's children finish and are reaped */
    double peer = opt.cpu_pid ? tree_cpu(opt.cpu_pid) - peer0 : -1;
    printf("result mode=%s conns=%d bytes=%lld seconds=%.6f gen_cpu=%.6f peer_cpu=%.6f verified=%lld tls=%s\n",
           down ? "down" : "up", opt.conns, per * opt.conns, seconds, cpu, peer, per * opt.conns, tls_name);
}

/* ------------------------------------------------------------------ latency, connect, idle */
static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(double *v, int n, double q) {
    int i = (int)(q * n);
    return v[i < n ? i : n - 1];
}

static void round_trips(void) {
    conn_t *c = open_conn(64 * 1024);
    unsigned char msgs[16][RTT_SIZE], back[RTT_SIZE];
    RAND_bytes(&msgs[0][0], sizeof msgs);
    double *s = calloc((size_t)opt.count, sizeof *s);
    for (int i = -20; i < opt.count; i++) { /* 20 warm-up messages */
        const unsigned char *m = msgs[(i + 20) % 16];
        double t0 = now();
        send_message(c, m, RTT_SIZE);
        read_exact(c, back, RTT_SIZE);
        double t = now() - t0;
        if (memcmp(back, m, RTT_SIZE) != 0)
            die("the echo differs from the message sent");
        if (i >= 0)
            s[i] = t;
    }
    close_conn(c);
    qsort(s, (size_t)opt.count, sizeof *s, by_value);
    printf("result mode=rtt count=%d p50_ms=%.4f p99_ms=%.4f verified=%d\n", opt.count, pct(s, opt.count, .5) * 1e3,
           pct(s, opt.count, .99) * 1e3, opt.count * RTT_SIZE);
}

static double upgraded_at; /* when open_conn last returned */

static void read_greeting(conn_t *c) {
    unsigned char g[sizeof GREETING - 1];
    read_exact(c, g, sizeof g);
    if (memcmp(g, GREETING, sizeof g) != 0)
        die("the greeting differs from the target's");
}

static conn_t *greeted(void) {
    conn_t *c = open_conn(4096);
    upgraded_at = now();
    read_greeting(c);
    return c;
}

/* Sequential sessions: the time to the upgrade's answer (TCP connect + TLS + upgrade) and to the
   target's first byte (the greeting, relayed once the proxy reached the target). */
static void connects(void) {
    double *up = calloc((size_t)opt.count, sizeof *up), *first = calloc((size_t)opt.count, sizeof *first);
    for (int i = 0; i < opt.count; i++) {
        double t0 = now();
        conn_t *c = greeted();
        first[i] = now() - t0;
        up[i] = upgraded_at - t0;
        close_conn(c);
    }
    qsort(up, (size_t)opt.count, sizeof *up, by_value);
    qsort(first, (size_t)opt.count, sizeof *first, by_value);
    printf("result mode=connect count=%d p50_ms=%.4f p99_ms=%.4f first_p50_ms=%.4f first_p99_ms=%.4f\n", opt.count,
           pct(up, opt.count, .5) * 1e3, pct(up, opt.count, .99) * 1e3, pct(first, opt.count, .5) * 1e3,
           pct(first, opt.count, .99) * 1e3);
}

/* Open --count sessions that stay idle after the greeting, say so, and close them all at a line (or EOF)
   on stdin: the caller measures the proxy's memory in between. The greetings are read once all are
   open, so a proxy that delays small writes (Nagle) costs its delay once, not once per session. */
static void idle(void) {
    conn_t **all = calloc((size_t)opt.count, sizeof *all);
    for (int i = 0; i < opt.count; i++)
        all[i] = open_conn(4096);
    for (int i = 0; i < opt.count; i++)
        read_greeting(all[i]);
    printf("idle sessions=%d\n", opt.count);
    fflush(stdout);
    char line[16];
    if (!fgets(line, sizeof line, stdin)) { /* EOF closes them too */
    }
    for (int i = 0; i < opt.count; i++)
        close_conn(all[i]);
    printf("result mode=idle count=%d\n", opt.count);
}

/* ------------------------------------------------------------------ hold and rate (the hand-over) */
static int stop_requested; /* set once a line "stop" (or EOF) arrived on stdin */

static int stopping(void) { return __atomic_load_n(&stop_requested, __ATOMIC_ACQUIRE); }

/* The next command on stdin ("mark", "stop"); EOF reads as "stop". */
static void read_command(char *line, size_t n) {
    if (!fgets(line, (int)n, stdin))
        snprintf(line, n, "stop");
    line[strcspn(line, "\r\n")] = 0;
}

typedef struct {
    pthread_t thread;
    int index, open, failed;
    long long bytes, at_mark; /* payload bytes echoed back and checked; the count at the last mark */
    double last, max_gap, max_gap_before_mark, max_gap_after_mark, mark_time;
    char err[ERR_LEN];
} held_t;

static held_t *held;
static int held_open, held_failed;
static pthread_mutex_t held_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t held_cond = PTHREAD_COND_INITIALIZER;
static __thread held_t *current_held;

static void held_failure(void) {
    held_t *h = current_held;
    pthread_mutex_lock(&held_lock);
    h->failed = 1;
    if (!h->open) /* failed before it was open: the opener waits for this one too */
        held_open++;
    held_failed++;
    pthread_cond_broadcast(&held_cond);
    pthread_mutex_unlock(&held_lock);
}

/* One held session: every interval, --chunk stream bytes to the echo target and the same bytes back,
   checked; it notes the longest time between two echoes (before and after the last mark). */
static void *hold_worker(void *arg) {
    held_t *h = arg;
    current_held = h;
    soft_err = h->err;
    soft_exit = held_failure;
    size_t chunk = (size_t)opt.chunk;
    unsigned char *frame = malloc(chunk + 14);
    conn_t *c = open_conn(chunk + 4096);
    pthread_mutex_lock(&held_lock);
    h->open = 1;
    h->last = now();
    held_open++;
    pthread_cond_broadcast(&held_cond);
    pthread_mutex_unlock(&held_lock);
    long long off = 0;
    while (!stopping()) {
        size_t n = is_ws(c) ? build_frame(frame, pattern + off % PERIOD, chunk, 2) : chunk;
        write_all(c, is_ws(c) ? frame : pattern + off % PERIOD, n);
        for (size_t got = 0; got < chunk;) {
            unsigned char *p;
            size_t k = read_data(c, &p);
            if (!k)
                die("the relay closed the session after %lld bytes", off + (long long)got);
            if (got + k > chunk)
                die("more bytes arrived than were sent");
            if (!matches(p, k, off + (long long)got))
                die("the echo differs from what was sent (near offset %lld)", off + (long long)got);
            got += k;
        }
        off += (long long)chunk;
        double t = now();
        pthread_mutex_lock(&held_lock);
        double gap = t - h->last;
        if (gap > h->max_gap)
            h->max_gap = gap;
        if (h->mark_time > 0 && t > h->mark_time && gap > h->max_gap_after_mark)
            h->max_gap_after_mark = gap;
        h->last = t;
        h->bytes = off;
        pthread_mutex_unlock(&held_lock);
        usleep((useconds_t)opt.interval_ms * 1000);
    }
    close_conn(c);
    free(frame);
    return NULL;
}

/* Open --count sessions to the echo target, each carrying --chunk bytes every --interval-ms, print
   "hold open=N failed=F" once all are open (or failed), then serve commands on stdin: "mark" (each
   session's count so far; prints "marked"), "stop" (end them all). The result: sessions failed,
   payload checked in all, the fewest bytes any one session carried since the mark, the longest gap
   between two echoes of any session (and since the mark); every failure is one line on stderr. */
static void hold(void) {
    held = calloc((size_t)opt.count, sizeof *held);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (int i = 0; i < opt.count; i++) {
        held[i].index = i;
        if (pthread_create(&held[i].thread, &attr, hold_worker, &held[i]) != 0)
            die("no thread for session %d", i);
    }
    pthread_mutex_lock(&held_lock);
    while (held_open < opt.count)
        pthread_cond_wait(&held_cond, &held_lock);
    int failed = held_failed;
    pthread_mutex_unlock(&held_lock);
    printf("hold open=%d failed=%d\n", opt.count - failed, failed);
    fflush(stdout);
    char line[64];
    double mark = 0;
    for (;;) {
        read_command(line, sizeof line);
        if (!strcmp(line, "mark")) {
            pthread_mutex_lock(&held_lock);
            mark = now();
            for (int i = 0; i < opt.count; i++) {
                held[i].at_mark = held[i].bytes;
                held[i].max_gap_before_mark = held[i].max_gap;
                held[i].mark_time = mark;
                held[i].max_gap_after_mark = 0;
            }
            pthread_mutex_unlock(&held_lock);
            printf("marked\n");
            fflush(stdout);
        } else if (!strcmp(line, "stop"))
            break;
    }
    double stopped = now();
    pthread_mutex_lock(&held_lock);
    /* a session that stopped flowing since the mark but has not failed yet is a stall, and counted */
    long long min_after = -1, total = 0;
    double max_gap = 0, max_gap_before = 0, max_gap_after = 0, stalled_for = 0;
    for (int i = 0; i < opt.count; i++) {
        held_t *h = &held[i];
        if (!h->failed && stopped - h->last > stalled_for)
            stalled_for = stopped - h->last;
    }
    pthread_mutex_unlock(&held_lock);
    __atomic_store_n(&stop_requested, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < opt.count; i++)
        pthread_join(held[i].thread, NULL);
    for (int i = 0; i < opt.count; i++) {
        held_t *h = &held[i];
        total += h->bytes;
        if (h->failed) {
            fprintf(stderr, "wsbench: hold: session %d failed after %lld bytes: %s\n", i, h->bytes, h->err);
            continue;
        }
        long long after = h->bytes - h->at_mark;
        if (min_after < 0 || after < min_after)
            min_after = after;
        if (h->max_gap > max_gap)
            max_gap = h->max_gap;
        if (h->max_gap_before_mark > max_gap_before)
            max_gap_before = h->max_gap_before_mark;
        if (h->max_gap_after_mark > max_gap_after)
            max_gap_after = h->max_gap_after_mark;
    }
    if (stalled_for > max_gap_after)
        max_gap_after = stalled_for;
    printf("result mode=hold sessions=%d failed=%d bytes=%lld min_bytes_after_mark=%lld max_gap_ms=%.1f "
           "max_gap_before_mark_ms=%.1f max_gap_after_mark_ms=%.1f closed_s=%.3f\n", opt.count, held_failed, total,
           min_after, max_gap * 1e3, max_gap_before * 1e3, max_gap_after * 1e3, now() - stopped);
}

/* ---- rate: new connections at a steady rate */
static int rate_active, rate_ok, rate_failed, rate_reported;
static double *rate_times, *rate_after; /* how long each served connection took, started before/after the mark */
static int rate_times_n, rate_after_n;
static double rate_mark; /* when "mark" arrived, 0 before */
static char rate_pid[32] = "";
static pthread_mutex_t rate_lock = PTHREAD_MUTEX_INITIALIZER;
static __thread char rate_err[ERR_LEN];
static __thread double rate_t0;

static void rate_done(int ok) {
    double t = now() - rate_t0;
    pthread_mutex_lock(&rate_lock);
    if (ok) {
        rate_ok++;
        if (rate_mark > 0 && rate_t0 >= rate_mark)
            rate_after[rate_after_n++] = t;
        else
            rate_times[rate_times_n++] = t;
    } else {
        rate_failed++;
        if (rate_reported++ < 10)
            fprintf(stderr, "wsbench: rate: a new connection failed after %.1f ms: %s\n", t * 1e3, rate_err);
    }
    rate_active--;
    pthread_mutex_unlock(&rate_lock);
}

static void rate_failure(void) { rate_done(0); }

/* GET /metrics on a new connection: which main process answered (wsproxy_build_info's pid label);
   prints "pid t=<monotonic seconds> pid=<pid>" each time that changes. */
static void metrics_probe(void) {
    conn_t *c = open_tcp(64 * 1024);
    char request[128];
    int n = snprintf(request, sizeof request,
                     "GET /metrics HTTP/1.1\r\nHost: localhost:%d\r\nConnection: close\r\n\r\n", opt.port);
    write_all(c, request, (size_t)n);
    while (c->len < c->cap && fill(c)) {
    }
    c->buf[c->len] = 0;
    char *text = (char *)c->buf;
    if (strncmp(text, "HTTP/1.1 200", 12) != 0)
        die("/metrics answered %.40s", text);
    char pid[32] = "-";
    char *info = strstr(text, "wsproxy_build_info{");
    char *label = info ? strstr(info, "pid=\"") : NULL;
    if (label)
        snprintf(pid, sizeof pid, "%.*s", (int)strcspn(label + 5, "\""), label + 5);
    double t = now();
    close_conn(c);
    pthread_mutex_lock(&rate_lock);
    if (strcmp(pid, rate_pid) != 0) {
        snprintf(rate_pid, sizeof rate_pid, "%s", pid);
        printf("pid t=%.6f pid=%s\n", t, pid);
        fflush(stdout);
    }
    pthread_mutex_unlock(&rate_lock);
}

static void *rate_worker(void *arg) {
    long index = (long)(intptr_t)arg;
    rate_t0 = now();
    soft_err = rate_err;
    soft_exit = rate_failure;
    if (opt.metrics_every && index % opt.metrics_every == 0)
        metrics_probe();
    else
        close_conn(greeted());
    rate_done(1);
    return NULL;
}

/* New connections at --rate per second, each on its own thread, until "stop" on stdin: every
   --metrics-every'th a GET /metrics (see metrics_probe), the others a console session that gets the
   target's greeting and closes; "mark" on stdin splits the times (prints "marked"). The result: started,
   served, failed (each failure one line on stderr, the first ten), and the time to be served, p50/p99/max,
   of those started before the mark and of those after. */
static void rate(void) {
    long started = 0, budget = 1L << 20;
    rate_times = calloc((size_t)budget, sizeof *rate_times);
    rate_after = calloc((size_t)budget, sizeof *rate_after);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    double period = 1.0 / opt.rate, next = now();
    int exhausted = 0;
    for (;;) {
        double wait = next - now();
        struct pollfd in = {.fd = 0, .events = POLLIN};
        if (poll(&in, 1, wait > 0 ? (int)(wait * 1e3) : 0) > 0) {
            char line[64];
            read_command(line, sizeof line);
            if (!strcmp(line, "stop"))
                break;
            if (!strcmp(line, "mark")) {
                pthread_mutex_lock(&rate_lock);
                rate_mark = now();
                pthread_mutex_unlock(&rate_lock);
                printf("marked\n");
                fflush(stdout);
            }
            continue;
        }
        if (now() < next)
            continue;
        next += period;
        int probe = opt.metrics_every && started % opt.metrics_every == 0;
        pthread_mutex_lock(&ticket_lock);
        int left = ticket_list == NULL || ticket_next < ticket_count || probe;
        pthread_mutex_unlock(&ticket_lock);
        if (!left || started >= budget) {
            exhausted = 1; /* stop starting, keep waiting for "stop" */
            continue;
        }
        pthread_mutex_lock(&rate_lock);
        rate_active++;
        pthread_mutex_unlock(&rate_lock);
        pthread_t t;
        if (pthread_create(&t, &attr, rate_worker, (void *)(intptr_t)started) != 0)
            die("no thread for a new connection");
        started++;
    }
    for (double until = now() + 30; now() < until;) {
        pthread_mutex_lock(&rate_lock);
        int active = rate_active;
        pthread_mutex_unlock(&rate_lock);
        if (!active)
            break;
        usleep(10 * 1000);
    }
    pthread_mutex_lock(&rate_lock);
    int n = rate_times_n, m = rate_after_n;
    qsort(rate_times, (size_t)n, sizeof *rate_times, by_value);
    qsort(rate_after, (size_t)m, sizeof *rate_after, by_value);
    printf("result mode=rate started=%ld ok=%d failed=%d unfinished=%d exhausted=%d p50_ms=%.2f p99_ms=%.2f "
           "max_ms=%.2f after_mark=%d after_p50_ms=%.2f after_p99_ms=%.2f after_max_ms=%.2f\n", started, rate_ok,
           rate_failed, rate_active, exhausted, n ? pct(rate_times, n, .5) * 1e3 : -1.0,
           n ? pct(rate_times, n, .99) * 1e3 : -1.0, n ? rate_times[n - 1] * 1e3 : -1.0, m,
           m ? pct(rate_after, m, .5) * 1e3 : -1.0, m ? pct(rate_after, m, .99) * 1e3 : -1.0,
           m ? rate_after[m - 1] * 1e3 : -1.0);
    fflush(stdout);
    pthread_mutex_unlock(&rate_lock);
}

/* ------------------------------------------------------------------ the target */
enum role { SOURCE, SINK, ECHO, GREET };
struct served {
    int fd;
    enum role role;
};

static int read_full(int fd, unsigned char *p, size_t n) {
    while (n > 0) {
        ssize_t r = recv(fd, p, n, 0);
        if (r <= 0)
            return 0;
        p += r;
        n -= (size_t)r;
    }
    return 1;
}

static int send_full(int fd, const unsigned char *p, size_t n) {
    while (n > 0) {
        ssize_t r = send(fd, p, n, MSG_NOSIGNAL);
        if (r <= 0)
            return 0;
        p += r;
        n -= (size_t)r;
    }
    return 1;
}

static void *serve(void *arg) {
    struct served s = *(struct served *)arg;
    free(arg);
    unsigned char be[8], *buf = malloc(CHUNK);
    unsigned long long count = 0;
    if ((s.role == SOURCE || s.role == SINK)) {
        if (!read_full(s.fd, be, 8))
            goto done;
        for (int i = 0; i < 8; i++)
            count = count << 8 | be[i];
    }
    if (s.role == SOURCE) {
        for (unsigned long long off = 0; off < count;) {
            size_t n = count - off < CHUNK ? (size_t)(count - off) : CHUNK;
            if (!send_full(s.fd, pattern + off % PERIOD, n))
                goto done;
            off += n;
        }
    } else if (s.role == SINK) {
        unsigned long long off = 0;
        int good = 1;
        while (off < count) {
            size_t want = count - off < CHUNK ? (size_t)(count - off) : CHUNK;
            ssize_t r = recv(s.fd, buf, want, 0);
            if (r <= 0)
                goto done;
            good = good && matches(buf, (size_t)r, (long long)off);
            off += (unsigned long long)r;
        }
        send_full(s.fd, (const unsigned char *)(good ? "K" : "X"), 1);
    } else if (s.role == ECHO) {
        ssize_t r;
        while ((r = recv(s.fd, buf, CHUNK, 0)) > 0)
            if (!send_full(s.fd, buf, (size_t)r))
                goto done;
        goto done;
    } else {
        send_full(s.fd, (const unsigned char *)GREETING, sizeof GREETING - 1);
    }
    while (recv(s.fd, buf, CHUNK, 0) > 0) { /* wait for the client's close */
    }
done:
    close(s.fd);
    free(buf);
    return NULL;
}

static int listeners[4];

static void *accept_loop(void *arg) {
    enum role role = (enum role)(intptr_t)arg;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 128 * 1024);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (;;) {
        int fd = accept(listeners[role], NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE)
                continue;
            die("accept: %s", strerror(errno));
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct served *s = malloc(sizeof *s);
        s->fd = fd;
        s->role = role;
        pthread_t t;
        if (pthread_create(&t, &attr, serve, s) != 0)
            die("no thread for a new connection");
    }
    return NULL;
}

static void target(void) {
    int ports[4];
    for (int i = 0; i < 4; i++) {
        listeners[i] = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (bind(listeners[i], (struct sockaddr *)&a, sizeof a) != 0 || listen(listeners[i], 4096) != 0 ||
            getsockname(listeners[i], (struct sockaddr *)&a, &len) != 0)
            die("listen: %s", strerror(errno));
        ports[i] = ntohs(a.sin_port);
    }
    printf("ports source=%d sink=%d echo=%d greet=%d\n", ports[0], ports[1], ports[2], ports[3]);
    fflush(stdout);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, accept_loop, (void *)(intptr_t)i);
    pthread_join(t[0], NULL);
}

/* ------------------------------------------------------------------ main */
static long long number(const char *name, const char *value, long long lo) {
    char *end;
    long long v = strtoll(value, &end, 10);
    if (*value == 0 || *end != 0 || v < lo)
        die("%s wants a number >= %lld, not %s", name, lo, value);
    return v;
}

int main(int argc, char **argv) {
    if (argc < 2)
        die("usage: wsbench target|down|up|rtt|connect|idle|hold|rate [options]");
    const char *mode = argv[1];
    for (int i = 2; i < argc; i += 2) {
        if (i + 1 >= argc)
            die("%s wants a value", argv[i]);
        const char *name = argv[i], *v = argv[i + 1];
        if (!strcmp(name, "--port"))
            opt.port = (int)number(name, v, 1);
        else if (!strcmp(name, "--conns"))
            opt.conns = (int)number(name, v, 1);
        else if (!strcmp(name, "--count"))
            opt.count = (int)number(name, v, 1);
        else if (!strcmp(name, "--bytes"))
            opt.bytes = number(name, v, 1);
        else if (!strcmp(name, "--cpu-pid"))
            opt.cpu_pid = (int)number(name, v, 1);
        else if (!strcmp(name, "--pause"))
            opt.pause = (int)number(name, v, 0);
        else if (!strcmp(name, "--chunk"))
            opt.chunk = (int)number(name, v, 1);
        else if (!strcmp(name, "--interval-ms"))
            opt.interval_ms = (int)number(name, v, 0);
        else if (!strcmp(name, "--rate"))
            opt.rate = (int)number(name, v, 1);
        else if (!strcmp(name, "--metrics-every"))
            opt.metrics_every = (int)number(name, v, 0);
        else if (!strcmp(name, "--ca"))
            opt.ca = v;
        else if (!strcmp(name, "--tickets"))
            opt.tickets = v;
        else
            die("unknown option %s", name);
    }
    signal(SIGPIPE, SIG_IGN);
    fill_pattern();
    if (!strcmp(mode, "target")) {
        target();
        return 0;
    }
    if (!opt.port)
        die("--port is required");
    if (opt.ca) {
        ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        /* offered in a browser's order (Chromium's); the server picks, and the result line names it */
        SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256");
        SSL_CTX_set_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                     "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                     "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");
        if (SSL_CTX_load_verify_locations(ctx, opt.ca, NULL) != 1)
            die("cannot load the CA file %s", opt.ca);
    }
    if (opt.tickets)
        load_tickets(opt.tickets);
    if (!strcmp(mode, "down") || !strcmp(mode, "up"))
        throughput(!strcmp(mode, "down"));
    else if (!strcmp(mode, "rtt"))
        round_trips();
    else if (!strcmp(mode, "connect"))
        connects();
    else if (!strcmp(mode, "idle"))
        idle();
    else if (!strcmp(mode, "hold"))
        hold();
    else if (!strcmp(mode, "rate"))
        rate();
    else
        die("unknown mode %s", mode);
    return 0;
}
