/*
 * treesweeper: the benchmark's process-tree victim.
 *
 *   treesweeper PROCS THREADS MIB READY_FILE RESULT_FILE [MAX_SECONDS]
 *
 * The root forks PROCS-1 children before it touches any memory (so no page is copy-on-write
 * shared). Every process maps MIB MiB of private anonymous memory and runs THREADS threads (its
 * main thread and THREADS-1 more); each thread owns one slice of that memory and sweeps it the way
 * sweeper.c does: check a page against (global page number, generation), bump the generation,
 * rewrite it. Page numbers are global over the tree, so a page restored into the wrong process
 * fails its check too.
 *
 * Each child writes READY_FILE.<index> once its memory is touched and its threads run; the root
 * waits for all of them, then writes READY_FILE (atomically) as one JSON line:
 *   {"pids":[root, child1, ...],"threads":PROCS*THREADS,"bytes":..,"pages":..}
 *
 * On SIGTERM (to the root; only main threads take SIGTERM) the root stops its threads, SIGTERMs
 * its children and waits for them. Every process checks all its pages, that each of its threads
 * still has the TID it started with, and (children) that the root is still its parent; a child
 * writes its line to RESULT_FILE.<index> and exits 0 or 1. The root then writes to RESULT_FILE
 *   PASS procs=P threads=T pages=N sweeps=S rewrites=R         or         FAIL <what was wrong>
 * and exits 0 (PASS) or 1 (FAIL).
 *
 * If the benchmark is killed outright nothing is left: the root dies with its parent, the children
 * with the root (PR_SET_PDEATHSIG, which ferry restores), and none lives past MAX_SECONDS (600).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_victim.h"
#include "page_pattern.h"

#define MAX_PROCS 64
#define MAX_THREADS 64

static volatile sig_atomic_t stop_requested;
static double deadline;

static void on_term(int sig) {
  (void)sig;
  stop_requested = 1;
}

static int stopping(void) {
  return __atomic_load_n(&stop_requested, __ATOMIC_RELAXED);
}

/* One thread's slice: pages [first, first + count) of the tree, at mem. */
struct slice {
  uint64_t *mem;
  uint64_t first, count;
  uint32_t *gen;
  pid_t tid;
  uint64_t rewrites, sweeps, bad;
  int overdue;
  pthread_t thread;
};

static void sweep(struct slice *s) {
  s->tid = gettid();
  uint64_t p = 0;
  while (!stopping()) {
    uint64_t *page = s->mem + p * WORDS;
    if (!page_ok(page, s->first + p, s->gen[p])) s->bad++;
    s->gen[p]++;
    fill_page(page, s->first + p, s->gen[p]);
    s->rewrites++;
    p = (p + 1) % s->count;
    if (p == 0) s->sweeps++;
    if ((s->rewrites & 4095) == 0 && now_seconds() > deadline) {
      s->overdue = 1;
      return;
    }
  }
}

static void *sweep_thread(void *arg) {
  sweep(arg);
  return NULL;
}

/* After the stop: every page of the slice, and the thread's TID then and now. */
static uint64_t bad_at_end(const struct slice *s) {
  uint64_t bad = 0;
  for (uint64_t p = 0; p < s->count; p++)
    if (!page_ok(s->mem + p * WORDS, s->first + p, s->gen[p])) bad++;
  return bad;
}

/*
 * Touch this process's memory, sweep it with `threads` threads until SIGTERM, check it.
 * `ready` is called once everything runs. Writes a summary or the first problem into `out`.
 */
static int run_process(int index, int threads, uint64_t pages_per_proc, void (*ready)(int), char *out, size_t outlen) {
  uint64_t bytes = pages_per_proc * PAGE;
  uint64_t *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) _exit(3);
  struct slice slices[MAX_THREADS];
  uint64_t per = pages_per_proc / threads;
  for (int t = 0; t < threads; t++) {
    struct slice *s = &slices[t];
    memset(s, 0, sizeof *s);
    s->first = index * pages_per_proc + t * per;
    s->count = t == threads - 1 ? pages_per_proc - t * per : per;
    s->mem = mem + (s->first - index * pages_per_proc) * WORDS;
    s->gen = calloc(s->count, sizeof *s->gen);
    if (!s->gen) _exit(3);
    for (uint64_t p = 0; p < s->count; p++) fill_page(s->mem + p * WORDS, s->first + p, 0);
  }
  /* Extra threads take no SIGTERM: the main thread does, and the flag stops them all. */
  sigset_t term, old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &term, &old);
  for (int t = 1; t < threads; t++)
    if (pthread_create(&slices[t].thread, NULL, sweep_thread, &slices[t]) != 0) _exit(3);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  ready(index);
  sweep(&slices[0]);
  pid_t tid0 = gettid();
  int overdue = slices[0].overdue;
  uint64_t bad = slices[0].bad, rewrites = slices[0].rewrites, sweeps = slices[0].sweeps, end_bad = 0;
  for (int t = 1; t < threads; t++) {
    pthread_join(slices[t].thread, NULL);
    overdue |= slices[t].overdue;
    bad += slices[t].bad;
    rewrites += slices[t].rewrites;
    if (t == 1 || slices[t].sweeps < sweeps) sweeps = slices[t].sweeps;
  }
  /* The TIDs recorded before the dump, read again now. */
  int tid_wrong = slices[0].tid != tid0;
  for (int t = 0; t < threads; t++) end_bad += bad_at_end(&slices[t]);
  if (overdue) {
    snprintf(out, outlen, "FAIL process %d lived past its deadline: nobody stopped it", index);
    return 1;
  }
  if (bad || end_bad || tid_wrong) {
    snprintf(out, outlen, "FAIL process %d (pid %d): bad_while_sweeping=%llu bad_at_end=%llu tid_changed=%d", index, (int)getpid(),
             (unsigned long long)bad, (unsigned long long)end_bad, tid_wrong);
    return 1;
  }
  snprintf(out, outlen, "PASS pages=%llu sweeps=%llu rewrites=%llu", (unsigned long long)pages_per_proc,
           (unsigned long long)sweeps, (unsigned long long)rewrites);
  return 0;
}

static const char *ready_file, *result_file;
static pid_t root_pid;
static int nprocs, nthreads;
static pid_t children[MAX_PROCS];
static uint64_t pages_per_proc;

static void child_ready(int index) {
  char path[4096];
  snprintf(path, sizeof path, "%s.%d", ready_file, index);
  write_file(path, "ready\n");
}

/* The root's threads run: wait until every child's do, then tell the benchmark. */
static void root_ready(int index) {
  (void)index;
  for (int i = 1; i < nprocs; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s.%d", ready_file, i);
    struct stat st;
    while (stat(path, &st) != 0) {
      int status;
      if (waitpid(children[i], &status, WNOHANG) == children[i] || now_seconds() > deadline) {
        for (int j = 1; j < nprocs; j++) kill(children[j], SIGKILL);
        _exit(3);
      }
      struct timespec ts = { 0, 1000000 };
      nanosleep(&ts, NULL);
    }
  }
  char line[4096];
  int len = snprintf(line, sizeof line, "{\"pids\":[%d", (int)root_pid);
  for (int i = 1; i < nprocs; i++) len += snprintf(line + len, sizeof line - len, ",%d", (int)children[i]);
  snprintf(line + len, sizeof line - len, "],\"threads\":%d,\"bytes\":%llu,\"pages\":%llu}\n", nprocs * nthreads,
           (unsigned long long)(pages_per_proc * PAGE * nprocs), (unsigned long long)(pages_per_proc * nprocs));
  write_file(ready_file, line);
}

/* The root, stopped: stop the children, wait for them, fold their lines into one verdict. */
static int judge(int root_failed, const char *root_line) {
  char details[4096] = "", verdict[8192];
  int dlen = 0, bad_children = 0;
  for (int i = 1; i < nprocs; i++) kill(children[i], SIGTERM);
  for (int i = 1; i < nprocs; i++) {
    int status = 0;
    pid_t r;
    while ((r = waitpid(children[i], &status, 0)) < 0 && errno == EINTR)
      ;
    char path[4096], line[1024] = "";
    snprintf(path, sizeof path, "%s.%d", result_file, i);
    FILE *f = fopen(path, "r");
    if (f) {
      if (!fgets(line, sizeof line, f)) line[0] = 0;
      fclose(f);
    }
    line[strcspn(line, "\n")] = 0;
    if (r == children[i] && WIFEXITED(status) && WEXITSTATUS(status) == 0 && strncmp(line, "PASS", 4) == 0) continue;
    bad_children++;
    if (dlen < (int)sizeof details - 200)
      dlen += snprintf(details + dlen, sizeof details - dlen, " [child %d pid %d: %s%s]", i, (int)children[i],
                       r != children[i] ? "not reaped; " : WIFSIGNALED(status) ? "killed by a signal; " : "",
                       line[0] ? line : "no result line");
  }
  if (root_failed || bad_children) {
    snprintf(verdict, sizeof verdict, "FAIL root: %s; %d of %d children failed:%s\n", root_line, bad_children, nprocs - 1, details);
    write_file(result_file, verdict);
    return 1;
  }
  snprintf(verdict, sizeof verdict, "PASS procs=%d threads=%d pages=%llu root: %s\n", nprocs, nprocs * nthreads,
           (unsigned long long)(pages_per_proc * nprocs), root_line + 5);
  write_file(result_file, verdict);
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 6 && argc != 7) {
    fprintf(stderr, "usage: treesweeper PROCS THREADS MIB READY_FILE RESULT_FILE [MAX_SECONDS]\n");
    return 2;
  }
  nprocs = atoi(argv[1]);
  nthreads = atoi(argv[2]);
  pages_per_proc = (strtoull(argv[3], NULL, 10) << 20) / PAGE;
  ready_file = argv[4];
  result_file = argv[5];
  deadline = now_seconds() + (argc == 7 ? strtod(argv[6], NULL) : 600);
  if (nprocs < 1 || nprocs > MAX_PROCS || nthreads < 1 || nthreads > MAX_THREADS || pages_per_proc < (uint64_t)nthreads) return 2;
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() == 1) return 3;
  root_pid = getpid();

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGTERM, &sa, NULL) != 0) return 3;

  char line[1024];
  for (int i = 1; i < nprocs; i++) {
    children[i] = fork();
    if (children[i] < 0) {
      for (int j = 1; j < i; j++) kill(children[j], SIGKILL);
      return 3;
    }
    if (children[i] == 0) {
      if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != root_pid) _exit(3);
      int failed = run_process(i, nthreads, pages_per_proc, child_ready, line, sizeof line);
      if (!failed && getppid() != root_pid) {
        snprintf(line, sizeof line, "FAIL process %d (pid %d): parent is %d, expected %d", i, (int)getpid(), (int)getppid(), (int)root_pid);
        failed = 1;
      }
      char path[4096];
      snprintf(path, sizeof path, "%s.%d", result_file, i);
      strcat(line, "\n");
      write_file(path, line);
      _exit(failed);
    }
  }
  int failed = run_process(0, nthreads, pages_per_proc, root_ready, line, sizeof line);
  return judge(failed, line);
}
