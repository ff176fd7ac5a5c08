
/* fuzz_pool.c: a pool of exact-size mallocs, see there */

#ifndef _FUZZ_POOL_H_INCLUDED_
#define _FUZZ_POOL_H_INCLUDED_

extern size_t  fuzz_pool_bytes;

void fuzz_pool_reset(void);

#endif /* _FUZZ_POOL_H_INCLUDED_ */
