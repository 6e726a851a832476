/* The sweepers' page content: word w of page p at generation g, checked after every move. */
#ifndef FERRY_BENCH_PAGE_PATTERN_H
#define FERRY_BENCH_PAGE_PATTERN_H
#include <stdint.h>

#define PAGE 4096
#define WORDS (PAGE / 8)

static inline uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/* Word w of page p at generation g: never zero, different for every (p, g). */
static inline uint64_t expected(uint64_t base, uint64_t w) {
  return (base + w * 0xd6e8feb86659fd93ull) | 1;
}
static inline uint64_t page_base(uint64_t p, uint32_t g) {
  return mix((p << 32) ^ g);
}

static inline void fill_page(uint64_t *page, uint64_t p, uint32_t g) {
  uint64_t base = page_base(p, g);
  for (uint64_t w = 0; w < WORDS; w++) page[w] = expected(base, w);
}

static inline int page_ok(const uint64_t *page, uint64_t p, uint32_t g) {
  uint64_t base = page_base(p, g);
  for (uint64_t w = 0; w < WORDS; w++)
    if (page[w] != expected(base, w)) return 0;
  return 1;
}
#endif
