/*
 * mem.h - the one allocator of the core, and a growable byte buffer on it.
 *
 * Every object of the core takes a `const h2ws_mem *` at creation and uses
 * it for all of its memory. The struct is borrowed: it must outlive every
 * object created with it. NULL selects the default allocator (malloc).
 *
 * Built with H2WS_DEBUG, the default allocator counts live allocations
 * (h2ws_mem_live_count) so tests can prove that everything was freed.
 */
#ifndef H2WS_MEM_H
#define H2WS_MEM_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  void *(*malloc)(size_t size, void *user_data);
  void (*free)(void *ptr, void *user_data);
  void *(*realloc)(void *ptr, size_t size, void *user_data);
  void *user_data;
} h2ws_mem;

/* Returns the allocator used when NULL is passed. Never NULL. */
const h2ws_mem *h2ws_mem_default(void);

/* Allocation helpers; `mem` may be NULL (default allocator). */
void *h2ws_mem_malloc(const h2ws_mem *mem, size_t size);
void *h2ws_mem_realloc(const h2ws_mem *mem, void *ptr, size_t size);
void h2ws_mem_free(const h2ws_mem *mem, void *ptr);

/*
 * Live allocations made through h2ws_mem_malloc/realloc minus those freed,
 * whatever the allocator. Counted only in H2WS_DEBUG builds; 0 otherwise.
 */
long h2ws_mem_live_count(void);

/*
 * h2ws_buf: a caller-owned growable byte buffer. Initialise with
 * h2ws_buf_init, release with h2ws_buf_free. `data` is NULL until
 * something is reserved. `head` is the offset of the first unread byte:
 * consumers advance it with h2ws_buf_consume instead of moving memory.
 */
typedef struct {
  uint8_t *data;
  size_t len;  /* bytes stored, counted from data (includes consumed ones) */
  size_t cap;  /* bytes allocated */
  size_t head; /* bytes already consumed from the front */
  const h2ws_mem *mem;
} h2ws_buf;

void h2ws_buf_init(h2ws_buf *buf, const h2ws_mem *mem);
void h2ws_buf_free(h2ws_buf *buf);

/* Bytes not yet consumed. */
static inline size_t h2ws_buf_pending(const h2ws_buf *buf) {
  return buf->len - buf->head;
}
static inline uint8_t *h2ws_buf_begin(const h2ws_buf *buf) {
  return buf->data + buf->head;
}

/*
 * Makes room for `extra` more bytes after `len`; returns a pointer to the
 * first free byte, or NULL on allocation failure (buffer unchanged).
 * Compacts consumed bytes before growing.
 */
uint8_t *h2ws_buf_reserve(h2ws_buf *buf, size_t extra);

/* Appends `n` bytes (borrowed). Returns 0 or H2WS_ERR_NOMEM. */
int h2ws_buf_append(h2ws_buf *buf, const void *src, size_t n);

/* Marks `n` pending bytes as consumed; resets to empty when all are. */
void h2ws_buf_consume(h2ws_buf *buf, size_t n);

/* Empties the buffer; frees its memory when it holds more than `keep`. */
void h2ws_buf_reset(h2ws_buf *buf, size_t keep);

#endif
