/*
 * sse_bench: a closed-loop HTTP/1.1 load generator for streamed
 * (text/event-stream) responses, which wrk cannot time: it records, per
 * request, the time to the first SSE "data:" line of the body (first
 * delta) and the time to the end of the response (total).
 *
 *   sse_bench -p PORT -c CONNS (-d SECONDS | -n REQUESTS) [-w WARMUP]
 *             [-H 'Name: value']... [-a] -u PATH -b BODY|@FILE [-i IDS_FILE]
 *
 * BODY may hold "%ID%", replaced by the ids of IDS_FILE (one a line) in
 * turn, so that concurrent requests never share a session.  Connections
 * are kept alive (a closed one is reopened).  -n sends that many requests
 * in all instead of running for a time; -a counts any 2xx response as a
 * success, with or without an event in it.  Prints one JSON object.
 *
 * Built by bench/run.sh with: cc -O2 -o sse_bench sse_bench.c
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>


#define MAX_HEADERS  16
#define RBUF         (256 * 1024)


enum { S_IDLE, S_SEND, S_STATUS, S_HEADERS, S_BODY_LEN, S_CHUNK_SIZE,
       S_CHUNK_DATA, S_CHUNK_CRLF, S_TRAILER, S_BODY_CLOSE };


typedef struct {
    int        fd;
    int        state;
    char      *req;
    size_t     req_len, req_sent;
    double     t0, t_first;
    long long  remaining;          /* Content-Length or chunk bytes left */
    int        status;
    int        chunked, has_len, keepalive;
    char       line[8192];         /* current header / chunk-size line */
    size_t     line_len;
    char       tail[8];            /* last body bytes, for "data:" across reads */
    size_t     tail_len;
} conn_t;


typedef struct {
    double    *v;
    size_t     n, size;
} series_t;


static const char  *host = "127.0.0.1";
static int          port;
static int          nconns = 16;
static double       duration = 5, warmup = 0;
static long long    max_requests;       /* -n: requests to start, 0: -d */
static long long    started;
static int          any_body;
static const char  *path = "/";
static const char  *body_tpl = "{}";
static char         headers[4096];
static char       **ids;
static size_t       nids, next_id;
static int          ep;

static double       t_measure, t_end;
static series_t     lat_first, lat_total;
static long long    n_ok, n_bad_status, n_no_delta, n_errors, n_bytes;


static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static void
die(const char *msg)
{
    perror(msg);
    exit(2);
}


static void
series_add(series_t *s, double v)
{
    if (s->n == s->size) {
        s->size = s->size ? 2 * s->size : 65536;
        s->v = realloc(s->v, s->size * sizeof(double));
        if (s->v == NULL) {
            die("realloc");
        }
    }

    s->v[s->n++] = v;
}


static int
cmp_double(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return (x > y) - (x < y);
}


static double
pct(series_t *s, double p)
{
    size_t  i;

    if (s->n == 0) {
        return 0;
    }

    i = (size_t) (p / 100.0 * (s->n - 1) + 0.5);
    return s->v[i];
}


static char *
build_request(void)
{
    const char  *id, *mark;
    char        *body, *req;
    size_t       blen;
    int          n;

    id = nids ? ids[next_id++ % nids] : "";
    mark = strstr(body_tpl, "%ID%");

    if (mark) {
        blen = strlen(body_tpl) - 4 + strlen(id);
        body = malloc(blen + 1);
        if (body == NULL) {
            die("malloc");
        }

        n = sprintf(body, "%.*s%s%s", (int) (mark - body_tpl), body_tpl, id,
                    mark + 4);
        blen = n;

    } else {
        body = strdup(body_tpl);
        blen = strlen(body);
    }

    n = asprintf(&req, "POST %s HTTP/1.1\r\nHost: %s:%d\r\n%s"
                 "Content-Type: application/json\r\n"
                 "Content-Length: %zu\r\n\r\n%s",
                 path, host, port, headers, blen, body);
    free(body);

    if (n < 0) {
        die("asprintf");
    }

    return req;
}


static void
conn_open(conn_t *c)
{
    int                  one = 1;
    struct sockaddr_in   sin;
    struct epoll_event   ev;

    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) {
        die("socket");
    }

    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    inet_pton(AF_INET, host, &sin.sin_addr);

    if (connect(c->fd, (struct sockaddr *) &sin, sizeof(sin)) < 0
        && errno != EINPROGRESS)
    {
        die("connect");
    }

    ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
    ev.data.ptr = c;

    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        die("epoll_ctl");
    }

    c->state = S_IDLE;
}


static void
conn_close(conn_t *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
}


static void conn_write(conn_t *c);


static void
conn_start(conn_t *c)
{
    if (max_requests ? started >= max_requests : now() >= t_end) {
        c->state = S_IDLE;
        return;
    }

    started++;

    if (c->fd < 0) {
        conn_open(c);
    }

    free(c->req);
    c->req = build_request();
    c->req_len = strlen(c->req);
    c->req_sent = 0;
    c->state = S_SEND;
    c->t0 = now();
    c->t_first = 0;
    c->status = 0;
    c->chunked = 0;
    c->has_len = 0;
    c->keepalive = 1;
    c->line_len = 0;
    c->tail_len = 0;

    conn_write(c);
}


static void
conn_error(conn_t *c)
{
    if (c->t0 >= t_measure) {
        n_errors++;
    }

    conn_close(c);
    conn_start(c);
}


static void
conn_done(conn_t *c)
{
    double  t = now();

    if (c->t0 >= t_measure) {
        if (c->status < 200 || c->status > 299) {
            n_bad_status++;

        } else if (c->t_first == 0 && !any_body) {
            n_no_delta++;

        } else {
            n_ok++;
            series_add(&lat_first, ((c->t_first ? c->t_first : t) - c->t0)
                                   * 1000);
            series_add(&lat_total, (t - c->t0) * 1000);
        }
    }

    if (!c->keepalive) {
        conn_close(c);
    }

    conn_start(c);
}


static void
conn_write(conn_t *c)
{
    ssize_t  n;

    while (c->state == S_SEND && c->req_sent < c->req_len) {
        n = write(c->fd, c->req + c->req_sent, c->req_len - c->req_sent);

        if (n < 0) {
            if (errno == EAGAIN) {
                return;
            }

            conn_error(c);
            return;
        }

        c->req_sent += n;
    }

    if (c->state == S_SEND) {
        c->state = S_STATUS;
    }
}


/* body bytes: look for the first "data:" */

static void
body_bytes(conn_t *c, const char *p, size_t len)
{
    char    buf[sizeof(c->tail) + 64];
    size_t  n;

    n_bytes += len;

    if (c->t_first) {
        return;
    }

    if (memmem(p, len, "data:", 5)) {
        c->t_first = now();
        return;
    }

    /* "data:" cut between two reads */
    n = len < 4 ? len : 4;
    memcpy(buf, c->tail, c->tail_len);
    memcpy(buf + c->tail_len, p, n);

    if (memmem(buf, c->tail_len + n, "data:", 5)) {
        c->t_first = now();
        return;
    }

    if (len >= 4) {
        memcpy(c->tail, p + len - 4, 4);
        c->tail_len = 4;

    } else {
        memcpy(buf, c->tail, c->tail_len);
        memcpy(buf + c->tail_len, p, len);
        n = c->tail_len + len;
        if (n > 4) {
            memmove(buf, buf + n - 4, 4);
            n = 4;
        }
        memcpy(c->tail, buf, n);
        c->tail_len = n;
    }
}


/* a complete line (without CRLF) of the status, headers or chunk framing */

static int
line_done(conn_t *c)
{
    char  *l = c->line;

    l[c->line_len] = '\0';

    switch (c->state) {

    case S_STATUS:
        if (strncmp(l, "HTTP/1.", 7) != 0 || c->line_len < 12) {
            return -1;
        }

        c->status = atoi(l + 9);
        c->state = S_HEADERS;
        return 0;

    case S_HEADERS:
        if (c->line_len == 0) {
            if (c->chunked) {
                c->state = S_CHUNK_SIZE;

            } else if (c->has_len) {
                c->state = S_BODY_LEN;
                if (c->remaining == 0) {
                    conn_done(c);
                    return 1;
                }

            } else {
                c->state = S_BODY_CLOSE;
                c->keepalive = 0;
            }

            return 0;
        }

        if (strncasecmp(l, "Content-Length:", 15) == 0) {
            c->has_len = 1;
            c->remaining = atoll(l + 15);

        } else if (strncasecmp(l, "Transfer-Encoding:", 18) == 0
                   && strcasestr(l + 18, "chunked"))
        {
            c->chunked = 1;

        } else if (strncasecmp(l, "Connection:", 11) == 0
                   && strcasestr(l + 11, "close"))
        {
            c->keepalive = 0;
        }

        return 0;

    case S_CHUNK_SIZE:
        c->remaining = strtoll(l, NULL, 16);
        c->state = c->remaining ? S_CHUNK_DATA : S_TRAILER;
        return 0;

    case S_CHUNK_CRLF:
        c->state = S_CHUNK_SIZE;
        return 0;

    case S_TRAILER:
        if (c->line_len == 0) {
            conn_done(c);
            return 1;
        }

        return 0;
    }

    return -1;
}


static void
conn_read(conn_t *c)
{
    static char  buf[RBUF];
    ssize_t      n;
    size_t       i, take;
    int          rc;

    for ( ;; ) {
        n = read(c->fd, buf, sizeof(buf));

        if (n < 0) {
            if (errno == EAGAIN) {
                return;
            }

            conn_error(c);
            return;
        }

        if (n == 0) {
            if (c->state == S_BODY_CLOSE) {
                c->keepalive = 0;
                conn_done(c);
                return;
            }

            if (c->state == S_IDLE) {
                conn_close(c);
                return;
            }

            if (c->state == S_STATUS && c->line_len == 0) {
                /* a kept-alive connection closed by the server: again */
                conn_close(c);
                conn_start(c);
                return;
            }

            conn_error(c);
            return;
        }

        if (c->state == S_IDLE || c->state == S_SEND) {
            conn_error(c);
            return;
        }

        for (i = 0; i < (size_t) n; /* void */) {

            switch (c->state) {

            case S_BODY_LEN:
            case S_CHUNK_DATA:
                take = (size_t) n - i;
                if ((long long) take > c->remaining) {
                    take = c->remaining;
                }

                body_bytes(c, buf + i, take);
                i += take;
                c->remaining -= take;

                if (c->remaining == 0) {
                    if (c->state == S_BODY_LEN) {
                        conn_done(c);
                        if (i < (size_t) n) {
                            /* pipelined garbage: not expected */
                            conn_error(c);
                        }
                        return;
                    }

                    c->state = S_CHUNK_CRLF;
                    c->line_len = 0;
                }

                continue;

            case S_BODY_CLOSE:
                body_bytes(c, buf + i, n - i);
                i = n;
                continue;

            default:
                break;
            }

            /* line-oriented states */
            if (buf[i] == '\n') {
                if (c->line_len && c->line[c->line_len - 1] == '\r') {
                    c->line_len--;
                }

                i++;
                rc = line_done(c);
                c->line_len = 0;

                if (rc < 0) {
                    conn_error(c);
                    return;
                }

                if (rc > 0) {
                    /* response done: a new request was started */
                    if (i < (size_t) n) {
                        conn_error(c);
                    }
                    return;
                }

                continue;
            }

            if (c->line_len < sizeof(c->line) - 1) {
                c->line[c->line_len++] = buf[i];
            }

            i++;
        }
    }
}


static void
usage(void)
{
    fprintf(stderr, "usage: sse_bench -p PORT -c CONNS (-d SECONDS | -n REQS)"
                    " [-w WARMUP] [-H header]... [-a] -u PATH -b BODY|@FILE"
                    " [-i IDS_FILE]\n");
    exit(2);
}


static char *
slurp(const char *file)
{
    FILE    *f;
    char    *s;
    long     len;

    f = fopen(file, "rb");
    if (f == NULL) {
        die(file);
    }

    fseek(f, 0, SEEK_END);
    len = ftell(f);
    rewind(f);

    s = malloc(len + 1);
    if (s == NULL || fread(s, 1, len, f) != (size_t) len) {
        die(file);
    }

    s[len] = '\0';
    fclose(f);

    return s;
}


static void
load_ids(const char *file)
{
    FILE    *f;
    char     line[256];
    size_t   size = 0;

    f = fopen(file, "r");
    if (f == NULL) {
        die(file);
    }

    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0') {
            continue;
        }

        if (nids == size) {
            size = size ? 2 * size : 1024;
            ids = realloc(ids, size * sizeof(char *));
        }

        ids[nids++] = strdup(line);
    }

    fclose(f);
}


int
main(int argc, char **argv)
{
    int                  opt, i, n;
    double               t_start, elapsed;
    conn_t              *conns;
    struct epoll_event   evs[256];

    while ((opt = getopt(argc, argv, "h:p:c:d:n:w:H:u:b:i:a")) != -1) {
        switch (opt) {
        case 'h': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'c': nconns = atoi(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 'n': max_requests = atoll(optarg); break;
        case 'a': any_body = 1; break;
        case 'w': warmup = atof(optarg); break;
        case 'H':
            if (strlen(headers) + strlen(optarg) + 3 >= sizeof(headers)) {
                usage();
            }
            strcat(headers, optarg);
            strcat(headers, "\r\n");
            break;
        case 'u': path = optarg; break;
        case 'b': body_tpl = optarg[0] == '@' ? slurp(optarg + 1) : optarg;
                  break;
        case 'i': load_ids(optarg); break;
        default: usage();
        }
    }

    if (port == 0 || nconns < 1) {
        usage();
    }

    ep = epoll_create1(0);
    if (ep < 0) {
        die("epoll_create1");
    }

    conns = calloc(nconns, sizeof(conn_t));

    t_start = now();
    t_measure = t_start + warmup;
    t_end = t_measure + duration;

    for (i = 0; i < nconns; i++) {
        conns[i].fd = -1;
        conn_start(&conns[i]);
    }

    for ( ;; ) {
        for (i = 0; i < nconns; i++) {
            if (conns[i].state != S_IDLE) {
                break;
            }
        }

        if (i == nconns) {
            break;
        }

        n = epoll_wait(ep, evs, 256, 100);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            die("epoll_wait");
        }

        for (i = 0; i < n; i++) {
            conn_t  *c = evs[i].data.ptr;

            if (c->fd < 0) {
                continue;
            }

            if (evs[i].events & (EPOLLOUT | EPOLLERR)) {
                conn_write(c);
            }

            if (c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                && c->state != S_SEND)
            {
                conn_read(c);
            }
        }

        /* a stuck response past the end by 10 s: give up on it */
        if (!max_requests && now() > t_end + 10) {
            for (i = 0; i < nconns; i++) {
                if (conns[i].state != S_IDLE) {
                    n_errors++;
                    conns[i].state = S_IDLE;
                }
            }
        }
    }

    elapsed = now() - t_measure;

    qsort(lat_first.v, lat_first.n, sizeof(double), cmp_double);
    qsort(lat_total.v, lat_total.n, sizeof(double), cmp_double);

    printf("{\"requests\":%lld,\"duration_s\":%.3f,\"rps\":%.1f,"
           "\"bad_status\":%lld,\"no_delta\":%lld,\"errors\":%lld,"
           "\"bytes\":%lld,"
           "\"first_p50_ms\":%.3f,\"first_p90_ms\":%.3f,"
           "\"first_p99_ms\":%.3f,"
           "\"total_p50_ms\":%.3f,\"total_p90_ms\":%.3f,"
           "\"total_p99_ms\":%.3f}\n",
           n_ok, elapsed, n_ok / elapsed, n_bad_status, n_no_delta,
           n_errors, n_bytes,
           pct(&lat_first, 50), pct(&lat_first, 90), pct(&lat_first, 99),
           pct(&lat_total, 50), pct(&lat_total, 90), pct(&lat_total, 99));

    return 0;
}
