
/*
 * ngx_http_callhq_module: a node's cache of session histories.
 *
 * A session that chats on one node need not have its history read from
 * PostgreSQL at every turn: the node saw it last time, and knows the two
 * messages it appended since.  The cache, in a shared memory zone that
 * all workers use (callhq_history_cache), keeps each session's history
 * as the model is sent it (JSON text, messages joined by ','), with the
 * version it is of: the session's next seq and history epoch.  The take
 * statement is told that version and reads no history rows when the
 * session is still at it; any other node's chat or a PATCH of the
 * messages moves the version on, and the history is read again.
 *
 * Entries are found by session id (its 36 characters, lower case) in a
 * red-black tree, and the least recently used go first when the zone is
 * full.  An entry's text is kept in pages of the zone, chained: a long
 * history needs no run of free pages (in a zone that entries come and go
 * in, there may be none), letting an entry go frees whole pages, and a
 * turn appends its messages without copying the rest.  The zone's mutex is held only to copy text in or out.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_callhq_module.h"


#define NGX_HTTP_CALLHQ_ID_LEN  36


typedef struct ngx_http_callhq_history_chunk_s
    ngx_http_callhq_history_chunk_t;

struct ngx_http_callhq_history_chunk_s {
    ngx_http_callhq_history_chunk_t   *next;
    size_t                             len;
    size_t                             size;       /* room in data */
    u_char                             data[1];
};


typedef struct {
    ngx_rbtree_node_t                  node;       /* key: crc32 of the id */
    ngx_queue_t                        lru;
    u_char                             id[NGX_HTTP_CALLHQ_ID_LEN];
    ngx_int_t                          next_seq;
    ngx_int_t                          epoch;
    size_t                             len;
    ngx_http_callhq_history_chunk_t   *first;
    ngx_http_callhq_history_chunk_t   *last;
} ngx_http_callhq_history_node_t;


typedef struct {
    ngx_rbtree_t                   rbtree;
    ngx_rbtree_node_t              sentinel;
    ngx_queue_t                    lru;        /* most recent first */
} ngx_http_callhq_history_sh_t;


typedef struct {
    ngx_http_callhq_history_sh_t  *sh;
    ngx_slab_pool_t               *shpool;
} ngx_http_callhq_history_t;


static ngx_int_t ngx_http_callhq_history_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_http_callhq_history_t *ngx_http_callhq_history_cache(void);
static ngx_int_t ngx_http_callhq_history_key(ngx_str_t *session,
    u_char *id, uint32_t *hash);
static ngx_http_callhq_history_node_t *ngx_http_callhq_history_find(
    ngx_http_callhq_history_t *cache, u_char *id, uint32_t hash);
static void *ngx_http_callhq_history_alloc(ngx_http_callhq_history_t *cache,
    ngx_http_callhq_history_node_t *keep, size_t size);
static ngx_int_t ngx_http_callhq_history_append(
    ngx_http_callhq_history_t *cache, ngx_http_callhq_history_node_t *hn,
    u_char *data, size_t len);
static void ngx_http_callhq_history_free(ngx_http_callhq_history_t *cache,
    ngx_http_callhq_history_node_t *hn);
static void ngx_http_callhq_history_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);


static ngx_str_t  ngx_http_callhq_history_zone_name =
    ngx_string("callhq_history_cache");


/* called by the callhq_history_cache directive's handler */

ngx_int_t
ngx_http_callhq_history_zone(ngx_conf_t *cf, size_t size)
{
    ngx_shm_zone_t               *shm_zone;
    ngx_http_callhq_main_conf_t  *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_callhq_module);

    shm_zone = ngx_shared_memory_add(cf, &ngx_http_callhq_history_zone_name,
                                     size, &ngx_http_callhq_module);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    shm_zone->init = ngx_http_callhq_history_init_zone;
    shm_zone->data = ngx_pcalloc(cf->pool,
                                 sizeof(ngx_http_callhq_history_t));
    if (shm_zone->data == NULL) {
        return NGX_ERROR;
    }

    mcf->history = shm_zone;

    return NGX_OK;
}


static ngx_int_t
ngx_http_callhq_history_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_callhq_history_t  *ocache = data;

    size_t                      len;
    ngx_http_callhq_history_t  *cache;

    cache = shm_zone->data;

    if (ocache) {
        /* a reload keeps what the old cycle's workers cached */
        cache->sh = ocache->sh;
        cache->shpool = ocache->shpool;
        return NGX_OK;
    }

    cache->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        cache->sh = cache->shpool->data;
        return NGX_OK;
    }

    cache->sh = ngx_slab_alloc(cache->shpool,
                               sizeof(ngx_http_callhq_history_sh_t));
    if (cache->sh == NULL) {
        return NGX_ERROR;
    }

    cache->shpool->data = cache->sh;

    ngx_rbtree_init(&cache->sh->rbtree, &cache->sh->sentinel,
                    ngx_http_callhq_history_insert_value);
    ngx_queue_init(&cache->sh->lru);

    len = sizeof(" in callhq history cache \"\"") + shm_zone->shm.name.len;

    cache->shpool->log_ctx = ngx_slab_alloc(cache->shpool, len);
    if (cache->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(cache->shpool->log_ctx, " in callhq history cache \"%V\"%Z",
                &shm_zone->shm.name);

    cache->shpool->log_nomem = 0;

    return NGX_OK;
}


ngx_uint_t
ngx_http_callhq_history_enabled(void)
{
    return ngx_http_callhq_history_cache() != NULL;
}


/*
 * The version of a session's history this node has: NGX_OK with *next_seq
 * and *epoch, or NGX_DECLINED.
 */

ngx_int_t
ngx_http_callhq_history_peek(ngx_str_t *session, ngx_int_t *next_seq,
    ngx_int_t *epoch)
{
    uint32_t                         hash;
    ngx_http_callhq_history_t       *cache;
    ngx_http_callhq_history_node_t  *hn;
    u_char                           id[NGX_HTTP_CALLHQ_ID_LEN];

    cache = ngx_http_callhq_history_cache();

    if (cache == NULL
        || ngx_http_callhq_history_key(session, id, &hash) != NGX_OK)
    {
        return NGX_DECLINED;
    }

    ngx_shmtx_lock(&cache->shpool->mutex);

    hn = ngx_http_callhq_history_find(cache, id, hash);

    if (hn) {
        *next_seq = hn->next_seq;
        *epoch = hn->epoch;
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return hn ? NGX_OK : NGX_DECLINED;
}


/* a copy of the history at that version into pool, or NGX_DECLINED */

ngx_int_t
ngx_http_callhq_history_get(ngx_str_t *session, ngx_int_t next_seq,
    ngx_int_t epoch, ngx_pool_t *pool, ngx_str_t *out)
{
    u_char                           *p;
    uint32_t                          hash;
    ngx_int_t                         rc;
    ngx_http_callhq_history_t        *cache;
    ngx_http_callhq_history_node_t   *hn;
    ngx_http_callhq_history_chunk_t  *c;
    u_char                            id[NGX_HTTP_CALLHQ_ID_LEN];

    cache = ngx_http_callhq_history_cache();

    if (cache == NULL
        || ngx_http_callhq_history_key(session, id, &hash) != NGX_OK)
    {
        return NGX_DECLINED;
    }

    rc = NGX_DECLINED;

    ngx_shmtx_lock(&cache->shpool->mutex);

    hn = ngx_http_callhq_history_find(cache, id, hash);

    if (hn && hn->next_seq == next_seq && hn->epoch == epoch) {

        p = ngx_pnalloc(pool, hn->len + 1);

        if (p == NULL) {
            rc = NGX_ERROR;

        } else {
            out->data = p;
            out->len = hn->len;

            for (c = hn->first; c; c = c->next) {
                p = ngx_cpymem(p, c->data, c->len);
            }

            *p = '\0';

            ngx_queue_remove(&hn->lru);
            ngx_queue_insert_head(&cache->sh->lru, &hn->lru);

            rc = NGX_OK;
        }
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return rc;
}


/*
 * Keeps the session's history at that version: the n parts joined, after
 * what the node had at version (epoch, from) when from is not 0.  Without
 * that, the node forgets the session.
 */

void
ngx_http_callhq_history_put(ngx_str_t *session, ngx_int_t epoch,
    ngx_int_t from, ngx_int_t next_seq, ngx_str_t *parts, ngx_uint_t n)
{
    uint32_t                         hash;
    ngx_uint_t                       i;
    ngx_http_callhq_history_t       *cache;
    ngx_http_callhq_history_node_t  *hn;
    u_char                           id[NGX_HTTP_CALLHQ_ID_LEN];

    cache = ngx_http_callhq_history_cache();

    if (cache == NULL
        || ngx_http_callhq_history_key(session, id, &hash) != NGX_OK)
    {
        return;
    }

    ngx_shmtx_lock(&cache->shpool->mutex);

    hn = ngx_http_callhq_history_find(cache, id, hash);

    if (from) {
        if (hn == NULL || hn->epoch != epoch || hn->next_seq != from) {
            goto forget;
        }

        /* the newest entry: what room it needs is taken from others */
        ngx_queue_remove(&hn->lru);
        ngx_queue_insert_head(&cache->sh->lru, &hn->lru);

    } else {
        if (hn) {
            ngx_http_callhq_history_free(cache, hn);
        }

        hn = ngx_http_callhq_history_alloc(cache, NULL,
                                     sizeof(ngx_http_callhq_history_node_t));
        if (hn == NULL) {
            goto unlock;
        }

        ngx_memcpy(hn->id, id, NGX_HTTP_CALLHQ_ID_LEN);
        hn->node.key = hash;
        hn->next_seq = 0;
        hn->epoch = 0;
        hn->len = 0;
        hn->first = NULL;
        hn->last = NULL;

        ngx_rbtree_insert(&cache->sh->rbtree, &hn->node);
        ngx_queue_insert_head(&cache->sh->lru, &hn->lru);
    }

    for (i = 0; i < n; i++) {
        if (ngx_http_callhq_history_append(cache, hn, parts[i].data,
                                           parts[i].len)
            != NGX_OK)
        {
            goto forget;
        }
    }

    hn->next_seq = next_seq;
    hn->epoch = epoch;

    goto unlock;

forget:

    /* hn: the entry found, or the one being appended to (never evicted) */
    if (hn) {
        ngx_http_callhq_history_free(cache, hn);
    }

unlock:

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


static ngx_http_callhq_history_t *
ngx_http_callhq_history_cache(void)
{
    ngx_http_callhq_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                              ngx_http_callhq_module);

    if (mcf == NULL || mcf->history == NULL) {
        return NULL;
    }

    return mcf->history->data;
}


static ngx_int_t
ngx_http_callhq_history_key(ngx_str_t *session, u_char *id, uint32_t *hash)
{
    if (session->len != NGX_HTTP_CALLHQ_ID_LEN) {
        return NGX_DECLINED;
    }

    ngx_strlow(id, session->data, NGX_HTTP_CALLHQ_ID_LEN);
    *hash = ngx_crc32_short(id, NGX_HTTP_CALLHQ_ID_LEN);

    return NGX_OK;
}


static ngx_http_callhq_history_node_t *
ngx_http_callhq_history_find(ngx_http_callhq_history_t *cache, u_char *id,
    uint32_t hash)
{
    ngx_int_t                        rc;
    ngx_rbtree_node_t               *node, *sentinel;
    ngx_http_callhq_history_node_t  *hn;

    node = cache->sh->rbtree.root;
    sentinel = cache->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        hn = (ngx_http_callhq_history_node_t *) node;

        rc = ngx_memcmp(id, hn->id, NGX_HTTP_CALLHQ_ID_LEN);

        if (rc == 0) {
            return hn;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/*
 * Size bytes of the zone, the least recently used entries going first if
 * need be, but never keep (the entry being appended to).
 */

static void *
ngx_http_callhq_history_alloc(ngx_http_callhq_history_t *cache,
    ngx_http_callhq_history_node_t *keep, size_t size)
{
    void                            *p;
    ngx_uint_t                       i;
    ngx_queue_t                     *q;
    ngx_http_callhq_history_node_t  *hn;

    for (i = 0; i < 64; i++) {
        p = ngx_slab_alloc_locked(cache->shpool, size);

        if (p) {
            return p;
        }

        if (ngx_queue_empty(&cache->sh->lru)) {
            return NULL;
        }

        q = ngx_queue_last(&cache->sh->lru);
        hn = ngx_queue_data(q, ngx_http_callhq_history_node_t, lru);

        if (hn == keep) {
            return NULL;
        }

        ngx_http_callhq_history_free(cache, hn);
        ngx_http_callhq_metrics_event(NGX_HTTP_CALLHQ_M_HISTORY_EVICTED);
    }

    return NULL;
}


/*
 * Appends len bytes to the entry: into the room its last chunk has left,
 * then into new chunks.  A chunk is a page, never a part of one: a page
 * shared by several entries comes back only when all of them go, so that
 * in a full zone letting the least recently used go might free no page.
 */

static ngx_int_t
ngx_http_callhq_history_append(ngx_http_callhq_history_t *cache,
    ngx_http_callhq_history_node_t *hn, u_char *data, size_t len)
{
    size_t                            n;
    ngx_http_callhq_history_chunk_t  *c;

    while (len) {
        c = hn->last;

        if (c == NULL || c->len == c->size) {
            c = ngx_http_callhq_history_alloc(cache, hn, ngx_pagesize);
            if (c == NULL) {
                return NGX_ERROR;
            }

            c->next = NULL;
            c->len = 0;
            c->size = ngx_pagesize
                      - offsetof(ngx_http_callhq_history_chunk_t, data);

            if (hn->last) {
                hn->last->next = c;

            } else {
                hn->first = c;
            }

            hn->last = c;
        }

        n = ngx_min(len, c->size - c->len);

        ngx_memcpy(c->data + c->len, data, n);

        c->len += n;
        hn->len += n;
        data += n;
        len -= n;
    }

    return NGX_OK;
}


static void
ngx_http_callhq_history_free(ngx_http_callhq_history_t *cache,
    ngx_http_callhq_history_node_t *hn)
{
    ngx_http_callhq_history_chunk_t  *c, *next;

    for (c = hn->first; c; c = next) {
        next = c->next;
        ngx_slab_free_locked(cache->shpool, c);
    }

    ngx_queue_remove(&hn->lru);
    ngx_rbtree_delete(&cache->sh->rbtree, &hn->node);
    ngx_slab_free_locked(cache->shpool, hn);
}


static void
ngx_http_callhq_history_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t               **p;
    ngx_http_callhq_history_node_t   *hn, *hnt;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            hn = (ngx_http_callhq_history_node_t *) node;
            hnt = (ngx_http_callhq_history_node_t *) temp;

            p = (ngx_memcmp(hn->id, hnt->id, NGX_HTTP_CALLHQ_ID_LEN) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}
