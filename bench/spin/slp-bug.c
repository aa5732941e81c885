/* gcc 12.2.0 (Debian 12.2.0-14) -O2 miscompiles this: it prints 255, not 1.
 * -O1, -O0 or -O2 -fno-tree-slp-vectorize print 1. The expression is the one pan.c
 * gets from bench/spin/gen.py's NLISTED for P = 4 (SPIN writes `now.phase[i]`).
 *     gcc -O2 -o slp slp-bug.c && ./slp */
#include <stdio.h>
typedef unsigned char uchar;
struct S { uchar phase[4]; uchar pos[4]; } now;

__attribute__((noinline)) void f(void)
{
	now.pos[0] = (((((((int)now.phase[0])>=1)&&(((int)now.phase[0])<=3))+((((int)now.phase[1])>=1)&&(((int)now.phase[1])<=3)))+((((int)now.phase[2])>=1)&&(((int)now.phase[2])<=3)))+((((int)now.phase[3])>=1)&&(((int)now.phase[3])<=3)));
}

int main(void)
{
	now.phase[1] = 2;
	f();
	printf("%d (expect 1)\n", now.pos[0]);
	return now.pos[0] != 1;
}
