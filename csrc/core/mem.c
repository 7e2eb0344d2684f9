#include "mem.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

#ifdef H2WS_DEBUG
static _Atomic long live_count;
#define COUNT(delta) (live_count += (delta))
#else
#define COUNT(delta) ((void)0)
#endif

static void *std_malloc(size_t size, void *ud) {
  (void)ud;
  return malloc(size);
}
static void std_free(void *ptr, void *ud) {
  (void)ud;
  free(ptr);
}
static void *std_realloc(void *ptr, size_t size, void *ud) {
  (void)ud;
  return realloc(ptr, size);
}

static const h2ws_mem default_mem = {std_malloc, std_free, std_realloc, NULL};

const h2ws_mem *h2ws_mem_default(void) { return &default_mem; }

void *h2ws_mem_malloc(const h2ws_mem *mem, size_t size) {
  if (!mem)
    mem = &default_mem;
  void *p = mem->malloc(size ? size : 1, mem->user_data);
  if (p)
    COUNT(1);
  return p;
}

void *h2ws_mem_realloc(const h2ws_mem *mem, void *ptr, size_t size) {
  if (!mem)
    mem = &default_mem;
  void *p = mem->realloc(ptr, size ? size : 1, mem->user_data);
  if (p && !ptr)
    COUNT(1);
  return p;
}

void h2ws_mem_free(const h2ws_mem *mem, void *ptr) {
  if (!ptr)
    return;
  if (!mem)
    mem = &default_mem;
  COUNT(-1);
  mem->free(ptr, mem->user_data);
}

long h2ws_mem_live_count(void) {
#ifdef H2WS_DEBUG
  return live_count;
#else
  return 0;
#endif
}

void h2ws_buf_init(h2ws_buf *buf, const h2ws_mem *mem) {
  buf->data = NULL;
  buf->len = buf->cap = buf->head = 0;
  buf->mem = mem;
}

void h2ws_buf_free(h2ws_buf *buf) {
  h2ws_mem_free(buf->mem, buf->data);
  buf->data = NULL;
  buf->len = buf->cap = buf->head = 0;
}

uint8_t *h2ws_buf_reserve(h2ws_buf *buf, size_t extra) {
  if (buf->cap - buf->len >= extra)
    return buf->data + buf->len;
  if (buf->head) { /* compact first: maybe that is enough */
    size_t pending = buf->len - buf->head;
    memmove(buf->data, buf->data + buf->head, pending);
    buf->len = pending;
    buf->head = 0;
    if (buf->cap - buf->len >= extra)
      return buf->data + buf->len;
  }
  if (extra > SIZE_MAX / 2 - buf->len)
    return NULL;
  size_t need = buf->len + extra;
  size_t cap = buf->cap ? buf->cap : 64;
  while (cap < need)
    cap *= 2;
  uint8_t *p = h2ws_mem_realloc(buf->mem, buf->data, cap);
  if (!p)
    return NULL;
  buf->data = p;
  buf->cap = cap;
  return p + buf->len;
}

int h2ws_buf_append(h2ws_buf *buf, const void *src, size_t n) {
  if (n == 0)
    return 0;
  uint8_t *dst = h2ws_buf_reserve(buf, n);
  if (!dst)
    return H2WS_ERR_NOMEM;
  memcpy(dst, src, n);
  buf->len += n;
  return 0;
}

void h2ws_buf_consume(h2ws_buf *buf, size_t n) {
  buf->head += n;
  if (buf->head >= buf->len)
    buf->head = buf->len = 0;
}

void h2ws_buf_reset(h2ws_buf *buf, size_t keep) {
  buf->len = buf->head = 0;
  if (buf->cap > keep)
    h2ws_buf_free(buf);
}
