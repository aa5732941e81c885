/* klpmodel test input (tests/data/c): a verbatim copy of torvalds/linux lib/livepatch/test_klp_state3.c
 * at commit ba3bdbe0db3fe0a07188d30b34221325172f7274, as ../shared/kernel/c-sources.md gives it. Linux kernel
 * code, GPL-2.0; this comment is the only addition.
 */
// SPDX-License-Identifier: GPL-2.0
// Copyright (C) 2019 SUSE

/* The console loglevel fix is the same in the next cumulative patch. */
#include "test_klp_state2.c"
