/*
 * tcpconns: the benchmark's TCP victim.
 *
 *   tcpconns CONNECTIONS READY_FILE RESULT_FILE [MAX_SECONDS]
 *
 * Listens on 127.0.0.1 (a kernel-chosen port) and opens CONNECTIONS established loopback
 * connections to itself: each is a client socket and the accepted socket, both held by this
 * process (2 × CONNECTIONS + 1 sockets; RLIMIT_NOFILE is raised up to its hard limit if needed).
 * Some carry unread bytes: every 10th has a few bytes queued from client to server, every 7th from
 * server to client. Then it sleeps until SIGTERM.
 *
 * Once everything is set up it writes READY_FILE (atomically) as one JSON line:
 *   {"pid":..,"connections":N,"sockets":S,"queued":Q,"port":P}
 *
 * On SIGTERM it checks every connection: both ends still have the addresses they had, the queued
 * bytes arrive intact, then a new message goes each way on every connection and arrives; and the
 * listener still accepts a new connection. It writes to RESULT_FILE
 *   PASS connections=N queued=Q both_ways=N         or         FAIL bad=B first: <what was wrong>
 * and exits 0 (PASS) or 1 (FAIL). If it cannot set up, it writes "FAIL setup: <why>" there and exits 3.
 *
 * If the benchmark is killed outright, it dies with its parent (PR_SET_PDEATHSIG, which ferry
 * restores) and never lives past MAX_SECONDS (default 600).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_victim.h"

struct conn {
  int client, server;
  unsigned short client_port; /* network order, as getsockname gives it */
};

static volatile sig_atomic_t stop_requested;
static struct conn *conns;
static int nconns;
static struct sockaddr_in listen_addr;
static int listener;
static int bad;
static char first_problem[512];

static void on_term(int sig) {
  (void)sig;
  stop_requested = 1;
}

static void problem(const char *fmt, ...) {
  if (bad++ == 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(first_problem, sizeof first_problem, fmt, ap);
    va_end(ap);
  }
}

/* Bytes queued at setup: client -> server on every 10th connection, server -> client on every 7th. */
static int queued_to_server(int i) { return i % 10 == 0; }
static int queued_to_client(int i) { return i % 7 == 0; }

static unsigned short port_of(int fd, int peer) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  int r = peer ? getpeername(fd, (struct sockaddr *)&a, &len) : getsockname(fd, (struct sockaddr *)&a, &len);
  return r == 0 && a.sin_family == AF_INET && a.sin_addr.s_addr == htonl(INADDR_LOOPBACK) ? a.sin_port : 0;
}

static int send_text(int fd, const char *text) {
  size_t len = strlen(text);
  return send(fd, text, len, MSG_NOSIGNAL) == (ssize_t)len;
}

/* Read exactly strlen(want) bytes within 2 s and compare them. */
static int expect_text(int fd, const char *want, const char *what, int i) {
  char got[64];
  size_t len = strlen(want), have = 0;
  double give_up = now_seconds() + 2;
  while (have < len) {
    struct pollfd p = { fd, POLLIN, 0 };
    int left_ms = (int)((give_up - now_seconds()) * 1000);
    if (left_ms <= 0 || poll(&p, 1, left_ms) <= 0) {
      problem("connection %d: %s: %zu of %zu bytes arrived", i, what, have, len);
      return 0;
    }
    ssize_t n = recv(fd, got + have, len - have, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      problem("connection %d: %s: %s after %zu bytes", i, what, n == 0 ? "closed" : strerror(errno), have);
      return 0;
    }
    if (n > 0) have += n;
  }
  if (memcmp(got, want, len) != 0) {
    problem("connection %d: %s: got \"%.*s\", expected \"%s\"", i, what, (int)len, got, want);
    return 0;
  }
  return 1;
}

static char setup_problem[256];

static int setup(int n) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  rlim_t need = 2 * (rlim_t)n + 32;
  if (rl.rlim_cur < need) {
    if (rl.rlim_max < need) {
      snprintf(setup_problem, sizeof setup_problem, "%d connections need %llu fds, RLIMIT_NOFILE's hard limit is %llu", n,
               (unsigned long long)need, (unsigned long long)rl.rlim_max);
      return 0;
    }
    rl.rlim_cur = need;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  }
  listener = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  if (listener < 0 || setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) return 0;
  listen_addr.sin_family = AF_INET;
  listen_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof listen_addr;
  if (bind(listener, (struct sockaddr *)&listen_addr, sizeof listen_addr) != 0 || listen(listener, 128) != 0 ||
      getsockname(listener, (struct sockaddr *)&listen_addr, &len) != 0)
    return 0;
  conns = calloc(n > 0 ? n : 1, sizeof *conns);
  if (!conns) return 0;
  /* One at a time: the socket accept() returns is the one just connected (checked by port). */
  for (int i = 0; i < n; i++) {
    struct conn *c = &conns[i];
    c->client = socket(AF_INET, SOCK_STREAM, 0);
    if (c->client < 0 || connect(c->client, (struct sockaddr *)&listen_addr, sizeof listen_addr) != 0) return 0;
    c->server = accept(listener, NULL, NULL);
    c->client_port = port_of(c->client, 0);
    if (c->server < 0 || c->client_port == 0 || port_of(c->server, 1) != c->client_port) return 0;
    char text[32];
    snprintf(text, sizeof text, "c2s-%d;", i);
    if (queued_to_server(i) && !send_text(c->client, text)) return 0;
    snprintf(text, sizeof text, "s2c-%d;", i);
    if (queued_to_client(i) && !send_text(c->server, text)) return 0;
  }
  return 1;
}

static void check(void) {
  char text[32];
  for (int i = 0; i < nconns; i++) {
    struct conn *c = &conns[i];
    if (port_of(c->client, 0) != c->client_port || port_of(c->client, 1) != listen_addr.sin_port ||
        port_of(c->server, 0) != listen_addr.sin_port || port_of(c->server, 1) != c->client_port) {
      problem("connection %d: addresses changed (client port %d, listener port %d)", i, ntohs(c->client_port), ntohs(listen_addr.sin_port));
      continue;
    }
    snprintf(text, sizeof text, "c2s-%d;", i);
    if (queued_to_server(i) && !expect_text(c->server, text, "bytes queued to the server", i)) continue;
    snprintf(text, sizeof text, "s2c-%d;", i);
    if (queued_to_client(i) && !expect_text(c->client, text, "bytes queued to the client", i)) continue;
  }
  /* Every connection, both ways: send all first, then read all. */
  for (int i = 0; i < nconns; i++) {
    snprintf(text, sizeof text, "ping-%d.", i);
    if (!send_text(conns[i].client, text)) problem("connection %d: client send: %s", i, strerror(errno));
    snprintf(text, sizeof text, "pong-%d.", i);
    if (!send_text(conns[i].server, text)) problem("connection %d: server send: %s", i, strerror(errno));
  }
  for (int i = 0; i < nconns; i++) {
    snprintf(text, sizeof text, "ping-%d.", i);
    expect_text(conns[i].server, text, "client to server after restore", i);
    snprintf(text, sizeof text, "pong-%d.", i);
    expect_text(conns[i].client, text, "server to client after restore", i);
  }
  int extra = socket(AF_INET, SOCK_STREAM, 0);
  if (extra < 0 || connect(extra, (struct sockaddr *)&listen_addr, sizeof listen_addr) != 0) {
    problem("the listener refused a new connection: %s", strerror(errno));
  } else {
    struct pollfd p = { listener, POLLIN, 0 };
    int accepted = poll(&p, 1, 2000) == 1 ? accept(listener, NULL, NULL) : -1;
    if (accepted < 0) problem("the listener accepted no new connection");
    else close(accepted);
  }
  if (extra >= 0) close(extra);
}

int main(int argc, char **argv) {
  if (argc != 4 && argc != 5) {
    fprintf(stderr, "usage: tcpconns CONNECTIONS READY_FILE RESULT_FILE [MAX_SECONDS]\n");
    return 2;
  }
  nconns = atoi(argv[1]);
  double deadline = now_seconds() + (argc == 5 ? strtod(argv[4], NULL) : 600);
  if (nconns < 0) return 2;
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() == 1) return 3;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGTERM, &sa, NULL) != 0) return 3;
  if (!setup(nconns)) {
    /* The benchmark gives us /dev/null for stderr: the reason goes where it looks. */
    char why[512];
    snprintf(why, sizeof why, "FAIL setup: %s\n", setup_problem[0] ? setup_problem : strerror(errno));
    write_file(argv[3], why);
    return 3;
  }
  int queued = 0;
  for (int i = 0; i < nconns; i++) queued += queued_to_server(i) + queued_to_client(i);
  char line[1024];
  snprintf(line, sizeof line, "{\"pid\":%d,\"connections\":%d,\"sockets\":%d,\"queued\":%d,\"port\":%d}\n", (int)getpid(), nconns,
           2 * nconns + 1, queued, ntohs(listen_addr.sin_port));
  write_file(argv[2], line);

  while (!stop_requested) {
    if (now_seconds() > deadline) {
      write_file(argv[3], "FAIL lived past its deadline: nobody stopped it\n");
      return 1;
    }
    struct timespec ts = { 0, 50 * 1000000L };
    nanosleep(&ts, NULL);
  }
  check();
  if (bad) snprintf(line, sizeof line, "FAIL bad=%d connections=%d first: %s\n", bad, nconns, first_problem);
  else snprintf(line, sizeof line, "PASS connections=%d queued=%d both_ways=%d\n", nconns, queued, nconns);
  write_file(argv[3], line);
  return bad ? 1 : 0;
}
