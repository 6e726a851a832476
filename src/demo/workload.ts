import fs from "node:fs";
import { cachedBinary } from "../hosts/cachedBinary.js";

/*
 * The demo's workload: a counter that visibly keeps counting. It holds 48 MiB of memory written
 * once (its checksum proves the memory arrived intact) and rewrites a 4 MiB hot set all the time
 * (so that pre-copy has dirty pages to chase). Every 50 ms it writes one status line at the start
 * of STATUSFILE: "count checksum". The checksum is computed over the cold set each time, so a
 * wrong page after the migration shows at once. With ADDR PORT it also serves its count over TCP:
 * it accepts one client, closes its listener, and sends it the same line every 50 ms on that one
 * connection (which ferry moves along with the process, in TCP repair mode).
 */
const SOURCE = `
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#define PAGE 4096UL
int main(int argc, char **argv) {
  if (argc < 2) return 2;
  size_t cold_len = 48UL << 20, hot_len = 4UL << 20;
  uint64_t *cold = mmap(0, cold_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  uint64_t *hot = mmap(0, hot_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (cold == MAP_FAILED || hot == MAP_FAILED) return 1;
  for (size_t i = 0; i < cold_len / 8; i++) cold[i] = i * 0x9e3779b97f4a7c15ULL;
  int fd = open(argv[1], O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return 1;
  for (int i = 0; i < 1024; i++) if (i != fd) close(i);
  int listener = -1, client = -1;
  if (argc >= 4) {
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[3])) };
    if (inet_pton(AF_INET, argv[2], &a.sin_addr) != 1) return 1;
    int one = 1;
    listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listener < 0 || setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) || bind(listener, (struct sockaddr *)&a, sizeof a) || listen(listener, 1)) return 1;
  }
  uint64_t count = 0;
  size_t next = 0;
  for (;;) {
    for (int k = 0; k < 10; k++) {
      for (int p = 0; p < 32; p++, next = (next + 1) % (hot_len / PAGE)) hot[next * PAGE / 8] = ++count;
      struct timespec ts = { 0, 5 * 1000 * 1000 };
      nanosleep(&ts, 0);
    }
    uint64_t sum = 0;
    for (size_t i = 0; i < cold_len / 8; i += 8) sum = (sum ^ cold[i]) * 0x100000001b3ULL;
    char line[64];
    int n = snprintf(line, sizeof line, "%llu %016llx\\n", (unsigned long long)count, (unsigned long long)sum);
    if (pwrite(fd, line, n, 0) != n) return 1;
    if (listener >= 0 && (client = accept4(listener, 0, 0, SOCK_CLOEXEC)) >= 0) {
      close(listener); /* one client: only its connection moves with the process */
      listener = -1;
    }
    if (client >= 0 && send(client, line, n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno != EAGAIN) {
      close(client); /* the client went away: count on without it */
      client = -1;
    }
  }
}
`;

/** Compile the workload once per machine (cached by the hash of its source); needs gcc. */
export function workloadBinary(): string {
  return cachedBinary(SOURCE, "ferry-demo-counter", "-O2", "FERRY_DEMO", "the demo workload");
}

export interface WorkloadStatus {
  count: number;
  checksum: string;
}

export function readStatus(file: string): WorkloadStatus | null {
  try {
    const [count, checksum] = fs.readFileSync(file, "utf8").trim().split(" ");
    return count && checksum ? { count: Number(count), checksum } : null;
  } catch {
    return null;
  }
}
