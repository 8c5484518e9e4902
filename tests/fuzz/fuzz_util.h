/* fuzz_util.h - what both fuzz targets share: failing loudly, and the
 * invariants every row, hold and event the store hands out must satisfy
 * (store/RULES.md), whatever the request history was.
 */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bs_store.h"

/* Prints the message and traps: libFuzzer saves the input as a crash. */
__attribute__((noreturn, format(printf, 1, 2))) void fuzz_fail(const char *fmt, ...);

#define FUZZ_CHECK(cond, ...)                                                                      \
	do {                                                                                       \
		if (!(cond))                                                                       \
			fuzz_fail(__VA_ARGS__);                                                    \
	} while (0)

/* The documented shape of an id the store accepted and hands back. */
bool fuzz_id_shape_ok(bs_str s);

/* Two borrowed byte strings are equal (both absent, or the same bytes). */
bool fuzz_str_eq(bs_str a, bs_str b);

/* Invariants of one usage row, hold or event of a store whose commit
 * index is `commit_index`. They trap with `what` in the message. */
void fuzz_check_usage(const char *what, const bs_usage *u, uint64_t commit_index);
void fuzz_check_hold(const char *what, const bs_hold *h);
void fuzz_check_event(const char *what, const bs_event *e, uint64_t commit_index);

/* The outcome of an applied (result BS_OK) mutation `m`, on its own:
 * fields consistent with each other and with the request. */
void fuzz_check_outcome(const bs_mutation *m, const bs_outcome *o);

/* The store's commit index; traps when it cannot be read. */
uint64_t fuzz_commit_index(bs_store *s);

#endif
