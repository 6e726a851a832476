/*
 * regs_gp: an asm loop holds known values in 13 general purpose registers
 * (rbx, rcx, rdx, rsi, rdi, r8-r15) and compares them on every turn until
 * SIGTERM; a frozen process is almost always inside it. Also checks the
 * thread pointer (fs base) and a __thread variable.
 */
#include <asm/prctl.h>
#include "victim.h"

static const char *const names[] = { "none", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9",
				     "r10", "r11", "r12", "r13", "r14", "r15" };
static volatile uint64_t spins;
static __thread uint64_t tls_word = 0x7157157157157157ULL;

/* Returns 0 once SIGTERM was seen, or the index of the register that changed. */
static long spin_with_known_registers(void)
{
	long bad;
#define LOAD(v, r) "movabs $" #v ", %%" #r "\n\t"
#define TEST(v, r, n) "movabs $" #v ", %%rax\n\tcmp %%rax, %%" #r "\n\tmov $" #n ", %%eax\n\tjne 2f\n\t"
#define EACH(X) \
	X(0x0101010101010101, rbx, 1) X(0x0202020202020202, rcx, 2) X(0x0303030303030303, rdx, 3) \
	X(0x0404040404040404, rsi, 4) X(0x0505050505050505, rdi, 5) X(0x0606060606060606, r8, 6) \
	X(0x0707070707070707, r9, 7) X(0x0808080808080808, r10, 8) X(0x0909090909090909, r11, 9) \
	X(0x0a0a0a0a0a0a0a0a, r12, 10) X(0x0b0b0b0b0b0b0b0b, r13, 11) X(0x0c0c0c0c0c0c0c0c, r14, 12) \
	X(0xfedcba9876543210, r15, 13)
#define L(v, r, n) LOAD(v, r)
	__asm__ volatile(
		EACH(L)
		"1:\n\t"
		EACH(TEST)
		"incq %[spins]\n\t"
		"pause\n\t"
		"cmpl $0, %[stop]\n\t"
		"je 1b\n\t"
		"xor %%eax, %%eax\n"
		"2:\n\t"
		: "=a"(bad), [spins] "+m"(spins)
		: [stop] "m"(victim_stop)
		: "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
		  "cc", "memory");
	return bad;
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	unsigned long fs_base = 0, gs_base = 0;
	SETUP(syscall(SYS_arch_prctl, ARCH_GET_FS, &fs_base) == 0);
	SETUP(syscall(SYS_arch_prctl, ARCH_GET_GS, &gs_base) == 0);
	victim_ready();

	long bad = spin_with_known_registers();
	victim_begin_check();

	CHECK(bad == 0, "register %s changed while spinning (after %llu turns)", names[bad],
	      (unsigned long long)spins);
	unsigned long fs_now = 0, gs_now = 0;
	CHECK(syscall(SYS_arch_prctl, ARCH_GET_FS, &fs_now) == 0 && fs_now == fs_base,
	      "fs base is %#lx, expected %#lx", fs_now, fs_base);
	CHECK(syscall(SYS_arch_prctl, ARCH_GET_GS, &gs_now) == 0 && gs_now == gs_base,
	      "gs base is %#lx, expected %#lx", gs_now, gs_base);
	CHECK(tls_word == 0x7157157157157157ULL, "__thread variable is %#llx", (unsigned long long)tls_word);
	victim_finish();
}
