/*
 * crc32(seed, data[, length]): the CRC-32 of zlib (reflected polynomial 0xEDB88320), the page
 * checksum of ferry's images, folded with carry-less multiplication (PCLMULQDQ) at memory speed.
 * Node's zlib.crc32 computes the same value at about a third of the speed (its SIMD path is
 * never switched on), and on a 1 GiB image that difference is a third of a second per side.
 *
 *   data     a Buffer / typed array, or an address in ferry's own memory (number or bigint),
 *            e.g. a window of the pages file mapped with mmap; then `length` is required
 *   returns  the CRC as an unsigned 32-bit number (same value as zlib.crc32(data, seed))
 *
 * crc32Accelerated() says whether this CPU has PCLMULQDQ; without it the table loop below is
 * correct but slower than zlib, and TypeScript uses zlib.crc32 instead.
 *
 * The folding is the one of Intel's "Fast CRC Computation for Generic Polynomials Using
 * PCLMULQDQ" (2009), with the constants for the reflected CRC-32 polynomial that zlib and the
 * Linux kernel use (x^(4*128+64) mod P, x^(4*128) mod P, ... and the Barrett constants).
 */
#include <immintrin.h>
#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crc32.h"

__attribute__((target("pclmul,sse4.1"))) static uint32_t fold_pclmul(const uint8_t *buf, size_t len, uint32_t crc) {
  /* len >= 64 and a multiple of 16; crc is the inverted running value */
  __m128i x0, x1, x2, x3, x4, x5, x6, x7, x8, y5, y6, y7, y8;
  x1 = _mm_loadu_si128((const __m128i *)(buf + 0x00));
  x2 = _mm_loadu_si128((const __m128i *)(buf + 0x10));
  x3 = _mm_loadu_si128((const __m128i *)(buf + 0x20));
  x4 = _mm_loadu_si128((const __m128i *)(buf + 0x30));
  x1 = _mm_xor_si128(x1, _mm_cvtsi32_si128((int)crc));
  x0 = _mm_set_epi64x(0x01c6e41596, 0x0154442bd4); /* fold by 4 x 128 bits */
  buf += 64;
  len -= 64;
  while (len >= 64) {
    x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
    x6 = _mm_clmulepi64_si128(x2, x0, 0x00);
    x7 = _mm_clmulepi64_si128(x3, x0, 0x00);
    x8 = _mm_clmulepi64_si128(x4, x0, 0x00);
    x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
    x2 = _mm_clmulepi64_si128(x2, x0, 0x11);
    x3 = _mm_clmulepi64_si128(x3, x0, 0x11);
    x4 = _mm_clmulepi64_si128(x4, x0, 0x11);
    y5 = _mm_loadu_si128((const __m128i *)(buf + 0x00));
    y6 = _mm_loadu_si128((const __m128i *)(buf + 0x10));
    y7 = _mm_loadu_si128((const __m128i *)(buf + 0x20));
    y8 = _mm_loadu_si128((const __m128i *)(buf + 0x30));
    x1 = _mm_xor_si128(_mm_xor_si128(x1, x5), y5);
    x2 = _mm_xor_si128(_mm_xor_si128(x2, x6), y6);
    x3 = _mm_xor_si128(_mm_xor_si128(x3, x7), y7);
    x4 = _mm_xor_si128(_mm_xor_si128(x4, x8), y8);
    buf += 64;
    len -= 64;
  }
  x0 = _mm_set_epi64x(0x00ccaa009e, 0x01751997d0); /* fold by 1 x 128 bits */
  x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
  x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, x0, 0x11), x2), x5);
  x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
  x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, x0, 0x11), x3), x5);
  x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
  x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, x0, 0x11), x4), x5);
  while (len >= 16) {
    x2 = _mm_loadu_si128((const __m128i *)buf);
    x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
    x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, x0, 0x11), x2), x5);
    buf += 16;
    len -= 16;
  }
  /* 128 bits to 64 */
  x2 = _mm_clmulepi64_si128(x1, x0, 0x10);
  x3 = _mm_setr_epi32(~0, 0, ~0, 0);
  x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), x2);
  x0 = _mm_set_epi64x(0, 0x0163cd6124);
  x2 = _mm_srli_si128(x1, 4);
  x1 = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, x3), x0, 0x00), x2);
  /* Barrett reduction to 32 bits */
  x0 = _mm_set_epi64x(0x01f7011641, 0x01db710641);
  x2 = _mm_and_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, x3), x0, 0x10), x3);
  x2 = _mm_clmulepi64_si128(x2, x0, 0x00);
  x1 = _mm_xor_si128(x1, x2);
  return (uint32_t)_mm_extract_epi32(x1, 1);
}

static uint32_t table[256];
static bool accelerated;

static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n) {
  crc = ~crc;
  if (accelerated && n >= 64) {
    size_t whole = n & ~(size_t)15;
    crc = fold_pclmul(p, whole, crc);
    p += whole;
    n -= whole;
  }
  while (n--) crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return ~crc;
}

void crc32_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  __builtin_cpu_init();
  accelerated = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
}

/* data pointer and length of a Buffer / typed array; false if it is neither */
static bool bytes_of(napi_env env, napi_value v, const uint8_t **data, size_t *len) {
  bool is = false;
  if (napi_is_buffer(env, v, &is) == napi_ok && is) {
    return napi_get_buffer_info(env, v, (void **)data, len) == napi_ok;
  }
  if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
    napi_typedarray_type type;
    size_t count, offset;
    napi_value ab;
    if (napi_get_typedarray_info(env, v, &type, &count, (void **)data, &ab, &offset) != napi_ok) return false;
    size_t unit = type == napi_uint8_array || type == napi_int8_array || type == napi_uint8_clamped_array ? 1
        : type == napi_int16_array || type == napi_uint16_array ? 2
        : type == napi_int32_array || type == napi_uint32_array || type == napi_float32_array ? 4 : 8;
    *len = count * unit;
    return true;
  }
  return false;
}

napi_value js_crc32(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) {
    napi_throw_type_error(env, "FERRY_NATIVE", "crc32(seed, data[, length])");
    return NULL;
  }
  uint32_t seed;
  napi_get_value_uint32(env, argv[0], &seed);
  const uint8_t *data = NULL;
  size_t len = 0;
  if (!bytes_of(env, argv[1], &data, &len)) {
    /* an address in our own memory, with its length */
    napi_valuetype t;
    napi_typeof(env, argv[1], &t);
    uint64_t addr = 0;
    int64_t n = -1;
    bool lossless;
    if (t == napi_number) {
      int64_t a;
      napi_get_value_int64(env, argv[1], &a);
      addr = (uint64_t)a;
    } else if (t == napi_bigint) {
      napi_get_value_bigint_uint64(env, argv[1], &addr, &lossless);
    }
    if (argc >= 3) napi_get_value_int64(env, argv[2], &n);
    if (!addr || n < 0) {
      napi_throw_type_error(env, "FERRY_NATIVE", "crc32(seed, address, length): address and length required");
      return NULL;
    }
    data = (const uint8_t *)(uintptr_t)addr;
    len = (size_t)n;
  } else if (argc >= 3) {
    int64_t n;
    napi_get_value_int64(env, argv[2], &n);
    if (n >= 0 && (size_t)n < len) len = (size_t)n;
  }
  napi_value out;
  napi_create_uint32(env, crc32_update(seed, data, len), &out);
  return out;
}

napi_value js_crc32_accelerated(napi_env env, napi_callback_info info) {
  napi_value out;
  napi_get_boolean(env, accelerated, &out);
  return out;
}
