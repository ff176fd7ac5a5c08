
/*
 * A pool for the fuzzers of code that allocates from one (query-string
 * parser, SSE framer): every ngx_palloc()/ngx_pnalloc() is a malloc() of
 * exactly its size (ASan sees a read past it), ngx_pfree() frees at once
 * (ASan sees a use after it), and fuzz_pool_reset() frees the rest after
 * each input.  fuzz_pool_bytes counts what was asked for since the reset:
 * the harness bounds it by the input's length.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_pool.h"


static void      **fuzz_blocks;
static size_t      fuzz_nblocks, fuzz_size;

size_t             fuzz_pool_bytes;


void *
ngx_palloc(ngx_pool_t *pool, size_t size)
{
    void  *p, **b;

    if (fuzz_nblocks == fuzz_size) {
        fuzz_size = fuzz_size ? 2 * fuzz_size : 256;
        b = realloc(fuzz_blocks, fuzz_size * sizeof(void *));
        if (b == NULL) {
            abort();
        }

        fuzz_blocks = b;
    }

    /* malloc(0) may be NULL, which the pool never returns */
    p = malloc(size ? size : 1);
    if (p == NULL) {
        abort();
    }

    fuzz_blocks[fuzz_nblocks++] = p;
    fuzz_pool_bytes += size;

    return p;
}


void *
ngx_pnalloc(ngx_pool_t *pool, size_t size)
{
    return ngx_palloc(pool, size);
}


void *
ngx_pcalloc(ngx_pool_t *pool, size_t size)
{
    void  *p;

    p = ngx_palloc(pool, size);
    memset(p, 0, size);

    return p;
}


ngx_int_t
ngx_pfree(ngx_pool_t *pool, void *p)
{
    size_t  i;

    for (i = 0; i < fuzz_nblocks; i++) {
        if (fuzz_blocks[i] == p) {
            free(p);
            fuzz_blocks[i] = fuzz_blocks[--fuzz_nblocks];
            return NGX_OK;
        }
    }

    fprintf(stderr, "fuzz_pool: ngx_pfree(%p) of no block\n", p);
    abort();
}


void
fuzz_pool_reset(void)
{
    while (fuzz_nblocks) {
        free(fuzz_blocks[--fuzz_nblocks]);
    }

    fuzz_pool_bytes = 0;
}
