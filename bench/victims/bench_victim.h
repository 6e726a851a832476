/* What every benchmark victim needs: a clock and an atomic write of its verdict file. */
#ifndef FERRY_BENCH_VICTIM_H
#define FERRY_BENCH_VICTIM_H
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Written to PATH.tmp then renamed: a reader never sees half a verdict. */
static void write_file(const char *path, const char *text) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) _exit(3);
  fputs(text, f);
  if (fclose(f) != 0) _exit(3);
  if (rename(tmp, path) != 0) _exit(3);
}
#endif
