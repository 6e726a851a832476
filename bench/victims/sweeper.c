/*
 * sweeper: the benchmark's victim.
 *
 *   sweeper MIB READY_FILE RESULT_FILE [MAX_SECONDS]
 *
 * Maps MIB MiB of private anonymous memory and gives every page its own non-zero content, a
 * function of (page number, generation of that page). Then it sweeps: each page is read back and
 * checked against that function, its generation is bumped and the page is rewritten. So memory
 * keeps changing while ferry freezes and dumps it, and every page of a restored copy can be checked.
 *
 * Once everything is touched it writes READY_FILE (atomically) as one JSON line:
 *   {"pid":..,"addr":..,"bytes":..,"pages":..}
 * so the benchmark knows where the memory is (it reads it with process_vm_readv too).
 *
 * On SIGTERM it checks every page (and counts the bad pages met while sweeping) and writes
 *   PASS pages=N sweeps=S rewrites=R          or          FAIL bad=B pages=N ...
 * to RESULT_FILE, then exits 0 (PASS) or 1 (FAIL).
 *
 * If the benchmark is killed outright, nothing is left sweeping: the sweeper dies with its parent
 * (PR_SET_PDEATHSIG, which ferry restores, so the restored one dies with the restoring process), and
 * never lives longer than MAX_SECONDS (default 600) of CLOCK_MONOTONIC anyway.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "bench_victim.h"
#include "page_pattern.h"

static volatile sig_atomic_t stop_requested;

static void on_term(int sig) {
  (void)sig;
  stop_requested = 1;
}

int main(int argc, char **argv) {
  if (argc != 4 && argc != 5) {
    fprintf(stderr, "usage: sweeper MIB READY_FILE RESULT_FILE [MAX_SECONDS]\n");
    return 2;
  }
  double deadline = now_seconds() + (argc == 5 ? strtod(argv[4], NULL) : 600);
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() == 1) return 3;
  uint64_t bytes = strtoull(argv[1], NULL, 10) << 20;
  uint64_t pages = bytes / PAGE;
  if (pages == 0) return 2;

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGTERM, &sa, NULL) != 0) return 3;

  uint64_t *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  uint32_t *gen = calloc(pages, sizeof *gen);
  if (mem == MAP_FAILED || !gen) return 3;
  for (uint64_t p = 0; p < pages; p++) fill_page(mem + p * WORDS, p, 0);

  char line[256];
  snprintf(line, sizeof line, "{\"pid\":%d,\"addr\":%llu,\"bytes\":%llu,\"pages\":%llu}\n", (int)getpid(),
           (unsigned long long)(uintptr_t)mem, (unsigned long long)bytes, (unsigned long long)pages);
  write_file(argv[2], line);

  uint64_t p = 0, rewrites = 0, sweeps = 0, bad = 0;
  while (!stop_requested) {
    uint64_t *page = mem + p * WORDS;
    if (!page_ok(page, p, gen[p])) bad++;
    gen[p]++;
    fill_page(page, p, gen[p]);
    rewrites++;
    p = (p + 1) % pages;
    if (p == 0) sweeps++;
    if ((rewrites & 4095) == 0 && now_seconds() > deadline) {
      write_file(argv[3], "FAIL lived past its deadline: nobody stopped it\n");
      return 1;
    }
  }

  uint64_t bad_at_end = 0;
  for (uint64_t q = 0; q < pages; q++)
    if (!page_ok(mem + q * WORDS, q, gen[q])) bad_at_end++;
  int pass = bad == 0 && bad_at_end == 0;
  snprintf(line, sizeof line, "%s pages=%llu sweeps=%llu rewrites=%llu bad_while_sweeping=%llu bad_at_end=%llu\n",
           pass ? "PASS" : "FAIL", (unsigned long long)pages, (unsigned long long)sweeps,
           (unsigned long long)rewrites, (unsigned long long)bad, (unsigned long long)bad_at_end);
  write_file(argv[3], line);
  return pass ? 0 : 1;
}
