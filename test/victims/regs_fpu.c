/*
 * regs_fpu: an asm loop keeps known values in xmm0-xmm13 (ymm0-ymm13, upper
 * halves included, when cpuid and XCR0 say AVX is usable) and compares them
 * on every turn until SIGTERM. The x87 control word and MXCSR are set to
 * non-default rounding modes and must be kept too.
 */
#include <cpuid.h>
#include "victim.h"

#define NREGS 14
#define FPU_CW 0x0f7f  /* round toward zero, 64-bit precision, exceptions masked */
#define MXCSR 0xbf80   /* flush to zero, round down, exceptions masked */

static uint8_t ref[NREGS][32] __attribute__((aligned(32)));
static volatile uint64_t spins;

static int have_avx(void)
{
	unsigned a, b, c, d;
	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_AVX) || !(c & bit_OSXSAVE))
		return 0;
	unsigned lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return (lo & 6) == 6; /* the OS saves SSE and AVX state */
}

#define CMP_XMM(n) \
	"mov $" #n ", %%ecx\n\t" \
	"movdqa %%xmm" #n ", %%xmm15\n\t" \
	"pcmpeqb " #n "*32(%[ref]), %%xmm15\n\t" \
	"pmovmskb %%xmm15, %%eax\n\t" \
	"cmp $0xffff, %%eax\n\t" \
	"jne 2f\n\t"
#define LOAD_XMM(n) "movdqa " #n "*32(%[ref]), %%xmm" #n "\n\t"
#define CMP_YMM(n) \
	"mov $" #n ", %%ecx\n\t" \
	"vpcmpeqb " #n "*32(%[ref]), %%ymm" #n ", %%ymm15\n\t" \
	"vpmovmskb %%ymm15, %%eax\n\t" \
	"cmp $-1, %%eax\n\t" \
	"jne 2f\n\t"
#define LOAD_YMM(n) "vmovdqa " #n "*32(%[ref]), %%ymm" #n "\n\t"
#define ALL(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13)
#define CLOBBERS "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", \
	"xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "rax", "cc", "memory"

/* Both return -1 once SIGTERM was seen, or the number of the register that changed. */
static long spin_sse(void)
{
	long bad;
	__asm__ volatile(
		ALL(LOAD_XMM)
		"1:\n\t"
		ALL(CMP_XMM)
		"incq %[spins]\n\t"
		"pause\n\t"
		"cmpl $0, %[stop]\n\t"
		"je 1b\n\t"
		"mov $-1, %%rcx\n"
		"2:\n\t"
		: "=&c"(bad), [spins] "+m"(spins)
		: [ref] "r"(ref), [stop] "m"(victim_stop)
		: CLOBBERS);
	return bad;
}

static long spin_avx(void)
{
	long bad;
	__asm__ volatile(
		ALL(LOAD_YMM)
		"1:\n\t"
		ALL(CMP_YMM)
		"incq %[spins]\n\t"
		"pause\n\t"
		"cmpl $0, %[stop]\n\t"
		"je 1b\n\t"
		"mov $-1, %%rcx\n"
		"2:\n\t"
		"vzeroupper\n\t"
		: "=&c"(bad), [spins] "+m"(spins)
		: [ref] "r"(ref), [stop] "m"(victim_stop)
		: CLOBBERS);
	return bad;
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	int avx = have_avx();
	fill_pattern(ref, sizeof ref, 0xf9);
	uint16_t cw = FPU_CW;
	uint32_t csr = MXCSR;
	__asm__ volatile("fldcw %0" : : "m"(cw));
	__asm__ volatile("ldmxcsr %0" : : "m"(csr));
	victim_ready();

	long bad = avx ? spin_avx() : spin_sse();
	victim_begin_check();

	CHECK(bad == -1, "%s%ld changed while spinning (after %llu turns)", avx ? "ymm" : "xmm", bad,
	      (unsigned long long)spins);
	__asm__ volatile("fnstcw %0" : "=m"(cw));
	__asm__ volatile("stmxcsr %0" : "=m"(csr));
	CHECK(cw == FPU_CW, "x87 control word is %#x, expected %#x", cw, FPU_CW);
	CHECK(csr == MXCSR, "MXCSR is %#x, expected %#x", csr, MXCSR);
	victim_finish();
}
