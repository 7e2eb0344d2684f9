/*
 * module.c - h2ws._core: the CPython binding of the C core.
 *
 * The only place (with the other files of csrc/py) that includes Python.h.
 * Multi-phase init, heap types, module state. Core error codes become
 * Python exceptions in one function, h2ws_py_raise().
 */
#include "binding.h"
#include "bench.h"

#include <nghttp2/nghttp2.h>

#include "../core/error.h"
#include "../core/frame.h"
#include "../core/h1.h"
#include "../core/mask.h"
#include "../core/mem.h"
#include "../core/rng.h"
#include "../core/utf8.h"
#include "../core/ws.h"

#include <stdint.h>
#include <sys/mman.h>

static module_state *get_state(PyObject *module) { return (module_state *)PyModule_GetState(module); }

/* The core's allocator for objects made by the binding. */
static void *py_malloc(size_t n, void *ud) {
  (void)ud;
  return PyMem_RawMalloc(n);
}
static void py_free(void *p, void *ud) {
  (void)ud;
  PyMem_RawFree(p);
}
static void *py_realloc(void *p, size_t n, void *ud) {
  (void)ud;
  return PyMem_RawRealloc(p, n);
}
const h2ws_mem h2ws_py_mem = {py_malloc, py_free, py_realloc, NULL};

/* Fresh pages cost a fault each (and a memory-cgroup charge): for a 16 MiB
 * message, 4,096 faults took longer than copying it. Buffers this large ask
 * for transparent huge pages (one fault per 2 MiB) where the system offers
 * them on request (THP "madvise" mode). */
#define HUGE_PAGE ((size_t)2 << 20)
#define HUGE_BYTES ((size_t)4 << 20)

/* h2ws_py_whole_mem: each allocation is the buffer (ob_sval) of a bytes
 * object of that size that the codec owns; free drops the codec's
 * reference. The codec never grows these buffers (it allocates them at the
 * message's exact length), so realloc is only there for completeness: it
 * moves the bytes into a new object rather than resizing one that Python
 * may already hold. */
#define WHOLE_OBJECT(p) ((PyObject *)((char *)(p) - offsetof(PyBytesObject, ob_sval)))

PyObject *h2ws_py_bytes_new(size_t n) {
  if (n > (size_t)PY_SSIZE_T_MAX)
    return PyErr_NoMemory();
  PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
#ifdef MADV_HUGEPAGE
  if (b && n >= HUGE_BYTES) {
    uintptr_t lo = (uintptr_t)PyBytes_AS_STRING(b), hi = lo + n;
    uintptr_t a = (lo + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
    uintptr_t z = hi & ~(uintptr_t)(HUGE_PAGE - 1);
    if (z > a)
      (void)madvise((void *)a, z - a, MADV_HUGEPAGE); /* advice only: ignore failures */
  }
#endif
  return b;
}

static void *whole_malloc(size_t n, void *ud) {
  (void)ud;
  PyObject *b = h2ws_py_bytes_new(n);
  if (!b) {
    PyErr_Clear(); /* the core reports H2WS_ERR_NOMEM its own way */
    return NULL;
  }
  return PyBytes_AS_STRING(b);
}
static void whole_free(void *p, void *ud) {
  (void)ud;
  if (p)
    Py_DECREF(WHOLE_OBJECT(p));
}
static void *whole_realloc(void *p, size_t n, void *ud) {
  if (!p)
    return whole_malloc(n, ud);
  void *q = whole_malloc(n, ud);
  if (!q)
    return NULL;
  size_t old = (size_t)PyBytes_GET_SIZE(WHOLE_OBJECT(p));
  memcpy(q, p, old < n ? old : n);
  whole_free(p, ud);
  return q;
}
const h2ws_mem h2ws_py_whole_mem = {whole_malloc, whole_free, whole_realloc, NULL};

PyObject *h2ws_py_whole_take(h2ws_buf *buf) {
  if (!buf->data || buf->head) {
    h2ws_buf_free(buf);
    PyErr_SetString(PyExc_SystemError, "h2ws_py_whole_take: no buffer to take");
    return NULL;
  }
  PyObject *b = Py_NewRef(WHOLE_OBJECT(buf->data));
  size_t len = buf->len;
  h2ws_buf_free(buf); /* drops the buffer's reference: ours is the only one */
  if (_PyBytes_Resize(&b, (Py_ssize_t)len) < 0)
    return NULL; /* b was freed */
  return b;
}

PyObject *h2ws_py_whole_message(const uint8_t *data, size_t len) {
  PyObject *b = WHOLE_OBJECT(data);
  assert(PyBytes_CheckExact(b) && (size_t)PyBytes_GET_SIZE(b) == len);
  (void)len;
  return Py_NewRef(b);
}

PyObject *h2ws_py_raise(module_state *st, int err, const char *what) {
  const char *msg = what ? what : h2ws_strerror(err);
  switch (err) {
  case H2WS_ERR_NOMEM:
    return PyErr_NoMemory();
  case H2WS_ERR_INVALID_ARGUMENT:
    PyErr_SetString(PyExc_ValueError, msg);
    return NULL;
  case H2WS_ERR_INVALID_STATE:
    PyErr_SetString(st->invalid_state, msg);
    return NULL;
  case H2WS_ERR_TOO_BIG:
    PyErr_SetString(st->payload_too_big, msg);
    return NULL;
  case H2WS_ERR_PROTOCOL:
    PyErr_SetString(st->protocol_error, msg);
    return NULL;
  default:
    PyErr_Format(PyExc_RuntimeError, "h2ws core: %s", msg);
    return NULL;
  }
}

int h2ws_py_close_code(PyObject *obj, unsigned *code) {
  *code = 0;
  if (obj == Py_None)
    return 0;
  long c = PyLong_AsLong(obj);
  if (c == -1 && PyErr_Occurred())
    return -1;
  if (c <= 0 || c > 0xFFFF) {
    PyErr_SetString(PyExc_ValueError, "invalid close code");
    return -1;
  }
  *code = (unsigned)c;
  return 0;
}

/* ---------------------------------------------------------------------- */
/* Module functions                                                        */

static PyObject *m_nghttp2_version(PyObject *module, PyObject *unused) {
  (void)module;
  (void)unused;
  nghttp2_info *info = nghttp2_version(0);
  return PyUnicode_FromString(info->version_str);
}

static PyObject *m_build_info(PyObject *module, PyObject *unused) {
  (void)module;
  (void)unused;
  int debug = 0, sanitize = 0, coverage = 0;
#ifdef H2WS_DEBUG
  debug = 1;
#endif
#ifdef H2WS_SANITIZE
  sanitize = 1;
#endif
#ifdef H2WS_COVERAGE
  coverage = 1;
#endif
  return Py_BuildValue("{s:O,s:O,s:O,s:s,s:s}", "debug", debug ? Py_True : Py_False, "sanitize",
                       sanitize ? Py_True : Py_False, "coverage", coverage ? Py_True : Py_False,
                       "mask_impl", h2ws_mask_impl(), "nghttp2_headers", NGHTTP2_VERSION);
}

static PyObject *m_mem_live_count(PyObject *module, PyObject *unused) {
  (void)module;
  (void)unused;
  return PyLong_FromLong(h2ws_mem_live_count());
}

static int get_key(Py_buffer *key) {
  if (key->len != 4) {
    PyErr_SetString(PyExc_ValueError, "a masking key is 4 bytes");
    return -1;
  }
  return 0;
}

/*
 * Fast calls. The hot functions are METH_FASTCALL | METH_KEYWORDS: a call
 * with the common argument types (exact bytes or bytearray buffers, an exact
 * int, positional arguments) is served without a tuple, a keyword parser or
 * the buffer protocol. Every other call goes through call_generic() to the
 * METH_VARARGS | METH_KEYWORDS implementation, so it is parsed, and fails,
 * exactly as before. A fast path reads a buffer's pointer and size without
 * exporting it: nothing between that and the end of the call can resize it.
 */
typedef PyObject *(*varargs_fn)(PyObject *self, PyObject *args, PyObject *kw);

static PyObject *call_generic(varargs_fn fn, PyObject *self, PyObject *const *args,
                              Py_ssize_t nargs, PyObject *kwnames) {
  PyObject *tuple = PyTuple_New(nargs);
  if (!tuple)
    return NULL;
  for (Py_ssize_t i = 0; i < nargs; i++)
    PyTuple_SET_ITEM(tuple, i, Py_NewRef(args[i]));
  PyObject *kw = NULL;
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  if (nkw) {
    kw = PyDict_New();
    for (Py_ssize_t i = 0; kw && i < nkw; i++)
      if (PyDict_SetItem(kw, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0)
        Py_CLEAR(kw);
    if (!kw) {
      Py_DECREF(tuple);
      return NULL;
    }
  }
  PyObject *r = fn(self, tuple, kw);
  Py_DECREF(tuple);
  Py_XDECREF(kw);
  return r;
}

/* A read-only view of an exact bytes or bytearray object, as "y*" would
 * give; 0 for any other type (the caller takes the generic path). */
static int fast_bytes(PyObject *o, const uint8_t **p, size_t *n) {
  if (PyBytes_CheckExact(o)) {
    *p = (const uint8_t *)PyBytes_AS_STRING(o);
    *n = (size_t)PyBytes_GET_SIZE(o);
    return 1;
  }
  if (PyByteArray_CheckExact(o)) {
    *p = (const uint8_t *)PyByteArray_AS_STRING(o);
    *n = (size_t)PyByteArray_GET_SIZE(o);
    return 1;
  }
  return 0;
}

/* An optional "K" argument (unsigned long long, no overflow check) given
 * as an exact int; 0 for anything else. */
static int fast_phase(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t i,
                      unsigned long long *phase) {
  *phase = 0;
  if (nargs <= i)
    return 1;
  if (!PyLong_CheckExact(args[i]))
    return 0;
  *phase = PyLong_AsUnsignedLongLongMask(args[i]); /* cannot fail on an int */
  return 1;
}

/* An "i" argument given as an exact int that fits; 0 for anything else. */
static int fast_int(PyObject *o, int *v) {
  if (!PyLong_CheckExact(o))
    return 0;
  int overflow;
  long x = PyLong_AsLongAndOverflow(o, &overflow);
  if (overflow || x < INT_MIN || x > INT_MAX)
    return 0;
  *v = (int)x;
  return 1;
}

static PyObject *mask_varargs(PyObject *module, PyObject *args, PyObject *kw) {
  (void)module;
  static char *kwlist[] = {"data", "key", "phase", NULL};
  Py_buffer data, key;
  unsigned long long phase = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "y*y*|K:mask", kwlist, &data, &key, &phase))
    return NULL;
  PyObject *out = NULL;
  if (get_key(&key) == 0) {
    out = PyBytes_FromStringAndSize(NULL, data.len);
    if (out)
      h2ws_mask_copy((uint8_t *)PyBytes_AS_STRING(out), data.buf, (size_t)data.len, key.buf,
                     phase);
  }
  PyBuffer_Release(&data);
  PyBuffer_Release(&key);
  return out;
}

static PyObject *m_mask(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                        PyObject *kwnames) {
  const uint8_t *data, *key;
  size_t dlen, klen;
  unsigned long long phase;
  if (kwnames || nargs < 2 || nargs > 3 || !fast_bytes(args[0], &data, &dlen) ||
      !fast_bytes(args[1], &key, &klen) || klen != 4 || !fast_phase(args, nargs, 2, &phase))
    return call_generic(mask_varargs, module, args, nargs, kwnames);
  PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)dlen);
  if (out)
    h2ws_mask_copy((uint8_t *)PyBytes_AS_STRING(out), data, dlen, key, phase);
  return out;
}

static PyObject *mask_into_varargs(PyObject *module, PyObject *args, PyObject *kw) {
  (void)module;
  static char *kwlist[] = {"buffer", "key", "phase", NULL};
  Py_buffer data, key;
  unsigned long long phase = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "w*y*|K:mask_into", kwlist, &data, &key, &phase))
    return NULL;
  int ok = get_key(&key) == 0;
  if (ok)
    h2ws_mask_apply(data.buf, (size_t)data.len, key.buf, phase);
  PyBuffer_Release(&data);
  PyBuffer_Release(&key);
  if (!ok)
    return NULL;
  Py_RETURN_NONE;
}

static PyObject *m_mask_into(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames) {
  const uint8_t *key;
  size_t klen;
  unsigned long long phase;
  if (kwnames || nargs < 2 || nargs > 3 || !PyByteArray_CheckExact(args[0]) ||
      !fast_bytes(args[1], &key, &klen) || klen != 4 || !fast_phase(args, nargs, 2, &phase))
    return call_generic(mask_into_varargs, module, args, nargs, kwnames);
  h2ws_mask_apply((uint8_t *)PyByteArray_AS_STRING(args[0]),
                  (size_t)PyByteArray_GET_SIZE(args[0]), key, phase);
  Py_RETURN_NONE;
}

static PyObject *m_utf8_feed(PyObject *module, PyObject *args) {
  (void)module;
  int state;
  Py_buffer data;
  if (!PyArg_ParseTuple(args, "iy*:utf8_feed", &state, &data))
    return NULL;
  if (state < 0 || state > 8) {
    PyBuffer_Release(&data);
    PyErr_SetString(PyExc_ValueError, "not a validator state");
    return NULL;
  }
  uint32_t r = h2ws_utf8_feed((uint32_t)state, data.buf, (size_t)data.len);
  PyBuffer_Release(&data);
  return PyLong_FromUnsignedLong(r);
}

static PyObject *m_utf8_valid(PyObject *module, PyObject *arg) {
  (void)module;
  Py_buffer data;
  if (PyObject_GetBuffer(arg, &data, PyBUF_SIMPLE) < 0)
    return NULL;
  int ok = h2ws_utf8_valid(data.buf, (size_t)data.len);
  PyBuffer_Release(&data);
  return PyBool_FromLong(ok);
}

/* One frame into new bytes: header, then the payload (masked with `keyp`
 * if not NULL). */
static PyObject *frame_bytes(int opcode, const uint8_t *payload, size_t plen, int fin, int rsv,
                             const uint8_t *keyp, uint64_t length) {
  if (opcode < 0 || opcode > 15 || rsv < 0 || (rsv & ~0x70)) {
    PyErr_SetString(PyExc_ValueError, "opcode must be 0..15 and rsv a mask of 0x70");
    return NULL;
  }
  uint8_t hdr[H2WS_FRAME_HEADER_MAX];
  size_t hlen = h2ws_frame_header_write(hdr, fin, (unsigned)rsv, (unsigned)opcode, length, keyp);
  PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(hlen + plen));
  if (!out)
    return NULL;
  uint8_t *dst = (uint8_t *)PyBytes_AS_STRING(out);
  memcpy(dst, hdr, hlen);
  if (plen) {
    if (keyp)
      h2ws_mask_copy(dst + hlen, payload, plen, keyp, 0);
    else
      memcpy(dst + hlen, payload, plen);
  }
  return out;
}

static PyObject *build_frame_varargs(PyObject *module, PyObject *args, PyObject *kw) {
  (void)module;
  static char *kwlist[] = {"opcode", "payload", "fin", "rsv", "mask", "length", NULL};
  int opcode, rsv = 0;
  int fin = 1;
  Py_buffer payload = {0};
  PyObject *mask_obj = Py_None, *length_obj = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "i|y*$piOO:build_frame", kwlist, &opcode, &payload,
                                   &fin, &rsv, &mask_obj, &length_obj))
    return NULL;
  PyObject *out = NULL;
  Py_buffer key = {0};
  const uint8_t *keyp = NULL;
  uint64_t length = payload.buf ? (uint64_t)payload.len : 0;
  if (opcode < 0 || opcode > 15 || rsv < 0 || (rsv & ~0x70)) {
    PyErr_SetString(PyExc_ValueError, "opcode must be 0..15 and rsv a mask of 0x70");
    goto done;
  }
  if (length_obj != Py_None) { /* a header that lies about the length, for tests */
    length = PyLong_AsUnsignedLongLong(length_obj);
    if (PyErr_Occurred())
      goto done;
  }
  if (mask_obj != Py_None) {
    if (PyObject_GetBuffer(mask_obj, &key, PyBUF_SIMPLE) < 0)
      goto done;
    if (get_key(&key) < 0)
      goto done;
    keyp = key.buf;
  }
  out = frame_bytes(opcode, payload.buf, payload.buf ? (size_t)payload.len : 0, fin, rsv, keyp,
                    length);
done:
  if (payload.buf)
    PyBuffer_Release(&payload);
  if (key.buf)
    PyBuffer_Release(&key);
  return out;
}

static PyObject *m_build_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames) {
  int opcode;
  const uint8_t *payload = NULL;
  size_t plen = 0;
  if (kwnames || nargs < 1 || nargs > 2 || !fast_int(args[0], &opcode) ||
      (nargs == 2 && !fast_bytes(args[1], &payload, &plen)))
    return call_generic(build_frame_varargs, module, args, nargs, kwnames);
  return frame_bytes(opcode, payload, plen, 1, 0, NULL, plen);
}

static PyObject *m_parse_frame_header(PyObject *module, PyObject *arg) {
  Py_buffer data;
  if (PyObject_GetBuffer(arg, &data, PyBUF_SIMPLE) < 0)
    return NULL;
  h2ws_frame_header h;
  int n = h2ws_frame_header_parse(data.buf, (size_t)data.len, &h);
  PyBuffer_Release(&data);
  if (n < 0)
    return h2ws_py_raise(get_state(module), n, "payload length has its top bit set");
  if (n == 0)
    Py_RETURN_NONE;
  /* "N": the mask (new bytes or a new reference to None) is handed over. */
  return Py_BuildValue("(OIIONKi)", h.fin ? Py_True : Py_False, (unsigned)h.rsv,
                       (unsigned)h.opcode, h.masked ? Py_True : Py_False,
                       h.masked ? PyBytes_FromStringAndSize((const char *)h.mask, 4)
                                : Py_NewRef(Py_None),
                       (unsigned long long)h.length, n);
}

static PyObject *m_websocket_accept(PyObject *module, PyObject *arg) {
  Py_buffer key;
  if (PyObject_GetBuffer(arg, &key, PyBUF_SIMPLE) < 0)
    return NULL;
  char out[H2WS_ACCEPT_LEN + 1];
  int rv = h2ws_h1_accept(key.buf, (size_t)key.len, out);
  PyBuffer_Release(&key);
  if (rv < 0)
    return h2ws_py_raise(get_state(module), rv, rv == H2WS_ERR_INVALID_ARGUMENT ? "key too long" : NULL);
  return PyUnicode_FromStringAndSize(out, H2WS_ACCEPT_LEN);
}

static PyObject *m_websocket_key_valid(PyObject *module, PyObject *arg) {
  (void)module;
  Py_buffer key;
  if (PyObject_GetBuffer(arg, &key, PyBUF_SIMPLE) < 0)
    return NULL;
  int ok = h2ws_h1_key_valid(key.buf, (size_t)key.len);
  PyBuffer_Release(&key);
  return PyBool_FromLong(ok);
}

static PyObject *m_close_code_is_valid(PyObject *module, PyObject *arg) {
  (void)module;
  int overflow;
  long code = PyLong_AsLongAndOverflow(arg, &overflow);
  if (code == -1 && PyErr_Occurred())
    return NULL;
  return PyBool_FromLong(!overflow && code >= 0 && code <= 0xFFFF &&
                         h2ws_close_code_is_valid((unsigned)code));
}

/* ---------------------------------------------------------------------- */
/* WebSocketCodec: one RFC 6455 endpoint, sans-IO                          */

typedef struct {
  PyObject_HEAD
  h2ws_ws ws;
  h2ws_rng rng;
  h2ws_buf out;
} CodecObject;

/* Builds the Python tuple for one core event; NULL with an exception set. */
/* (type, payload) without Py_BuildValue's format parsing: the tuple of every
 * message. `payload` is a new reference, or NULL with an exception set. */
static PyObject *event_pair(int type, PyObject *payload) {
  if (!payload)
    return NULL;
  PyObject *k = PyLong_FromLong(type);
  PyObject *t = k ? PyTuple_New(2) : NULL;
  if (!t) {
    Py_XDECREF(k);
    Py_DECREF(payload);
    return NULL;
  }
  PyTuple_SET_ITEM(t, 0, k);
  PyTuple_SET_ITEM(t, 1, payload);
  return t;
}

static PyObject *event_to_python(const h2ws_ws_event *ev) {
  const char *p = (const char *)ev->data;
  Py_ssize_t n = (Py_ssize_t)ev->len;
  switch (ev->type) {
  case H2WS_WS_EV_TEXT:
  case H2WS_WS_EV_BINARY:
    return event_pair(ev->type, h2ws_py_codec_message(ev));
  case H2WS_WS_EV_PING:
  case H2WS_WS_EV_PONG:
    return event_pair(ev->type, PyBytes_FromStringAndSize(p ? p : "", n));
  case H2WS_WS_EV_CLOSE:
    return Py_BuildValue("(iIN)", ev->type, ev->close_code,
                         PyUnicode_DecodeUTF8(p ? p : "", n, "strict"));
  case H2WS_WS_EV_ERROR:
    return Py_BuildValue("(iIs)", ev->type, ev->close_code, ev->reason);
  default:
    PyErr_SetString(PyExc_SystemError, "unknown core event");
    return NULL;
  }
}

static int get_u64(PyObject *o, uint64_t *out, const char *name) {
  if (o == NULL || o == Py_None) {
    *out = 0;
    return 0;
  }
  unsigned long long v = PyLong_AsUnsignedLongLong(o);
  if (v == (unsigned long long)-1 && PyErr_Occurred()) {
    PyErr_Format(PyExc_ValueError, "%s must be a non-negative int or None", name);
    return -1;
  }
  *out = v;
  return 0;
}

static int codec_init(PyObject *self_, PyObject *args, PyObject *kw) {
  CodecObject *self = (CodecObject *)self_;
  static char *kwlist[] = {"client", "max_message_size", "max_frame_size", "rsv_allowed", NULL};
  int client = 0;
  PyObject *max_msg = NULL, *max_frame = NULL;
  unsigned int rsv = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|$pOOI:WebSocketCodec", kwlist, &client, &max_msg,
                                   &max_frame, &rsv))
    return -1;
  h2ws_ws_config cfg;
  h2ws_ws_config_init(&cfg);
  cfg.client = client;
  if (max_msg && get_u64(max_msg, &cfg.max_message_size, "max_message_size") < 0)
    return -1;
  if (max_frame && get_u64(max_frame, &cfg.max_frame_size, "max_frame_size") < 0)
    return -1;
  if (rsv & ~0x70u) {
    PyErr_SetString(PyExc_ValueError, "rsv_allowed is a mask of 0x70");
    return -1;
  }
  cfg.rsv_allowed = rsv;
  cfg.whole_mem = &h2ws_py_whole_mem; /* large messages become bytes in place */
  h2ws_ws_free(&self->ws);
  h2ws_buf_free(&self->out);
  h2ws_ws_init(&self->ws, &cfg, &h2ws_py_mem, &self->rng);
  h2ws_buf_init(&self->out, &h2ws_py_mem);
  return 0;
}

static PyObject *codec_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
  (void)args;
  (void)kw;
  CodecObject *self = (CodecObject *)type->tp_alloc(type, 0);
  if (!self)
    return NULL;
  h2ws_rng_init(&self->rng);
  h2ws_ws_init(&self->ws, NULL, &h2ws_py_mem, &self->rng);
  h2ws_buf_init(&self->out, &h2ws_py_mem);
  return (PyObject *)self;
}

static void codec_dealloc(PyObject *self_) {
  CodecObject *self = (CodecObject *)self_;
  PyTypeObject *tp = Py_TYPE(self_);
  h2ws_ws_free(&self->ws);
  h2ws_buf_free(&self->out);
  h2ws_rng_free(&self->rng);
  tp->tp_free(self_);
  Py_DECREF(tp);
}


static PyObject *codec_receive_data(PyObject *self_, PyObject *arg) {
  CodecObject *self = (CodecObject *)self_;
  Py_buffer data;
  if (PyObject_GetBuffer(arg, &data, PyBUF_SIMPLE) < 0)
    return NULL;
  PyObject *events = PyList_New(0);
  const uint8_t *p = data.buf;
  size_t left = (size_t)data.len;
  while (events) {
    h2ws_ws_event ev;
    size_t used;
    int rv = h2ws_ws_recv(&self->ws, p, left, &used, &ev);
    if (rv < 0) {
      Py_CLEAR(events);
      h2ws_py_raise(h2ws_py_state_of(self_), rv, NULL);
      break;
    }
    p += used;
    left -= used;
    if (ev.type == H2WS_WS_EV_NONE)
      break;
    PyObject *t = event_to_python(&ev);
    h2ws_ws_event_done(&self->ws);
    if (!t || PyList_Append(events, t) < 0)
      Py_CLEAR(events);
    Py_XDECREF(t);
  }
  PyBuffer_Release(&data);
  return events;
}

/* What send() and send_frame() return: the bytes waiting in data_to_send(). */
static PyObject *pending_size(CodecObject *self) {
  return PyLong_FromSize_t(h2ws_buf_pending(&self->out));
}

static PyObject *send_frame_varargs(PyObject *self_, PyObject *args, PyObject *kw) {
  CodecObject *self = (CodecObject *)self_;
  static char *kwlist[] = {"opcode", "payload", "fin", "rsv", NULL};
  int opcode, rsv = 0;
  Py_buffer payload;
  int fin = 1;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "iy*|$pi:send_frame", kwlist, &opcode, &payload,
                                   &fin, &rsv))
    return NULL;
  if (opcode < 0 || opcode > 15 || rsv < 0 || rsv > 0x70) {
    PyBuffer_Release(&payload);
    PyErr_SetString(PyExc_ValueError, "opcode must be 0..15 and rsv a mask of 0x70");
    return NULL;
  }
  int rv = h2ws_ws_send_frame(&self->ws, &self->out, (unsigned)opcode, payload.buf, (size_t)payload.len,
                              fin, rsv);
  PyBuffer_Release(&payload);
  if (rv < 0)
    return h2ws_py_raise(h2ws_py_state_of(self_), rv, NULL);
  return pending_size(self);
}

static PyObject *codec_send_frame(PyObject *self_, PyObject *const *args, Py_ssize_t nargs,
                                  PyObject *kwnames) {
  CodecObject *self = (CodecObject *)self_;
  int opcode, fin = 1;
  const uint8_t *payload;
  size_t plen;
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  /* The fast path: (opcode, payload) or (opcode, payload, fin=<bool>). */
  if (nargs != 2 || nkw > 1 || !fast_int(args[0], &opcode) || opcode < 0 || opcode > 15 ||
      !fast_bytes(args[1], &payload, &plen))
    return call_generic(send_frame_varargs, self_, args, nargs, kwnames);
  if (nkw) {
    PyObject *v = args[2];
    if (!PyBool_Check(v) || PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "fin"))
      return call_generic(send_frame_varargs, self_, args, nargs, kwnames);
    fin = v == Py_True;
  }
  int rv = h2ws_ws_send_frame(&self->ws, &self->out, (unsigned)opcode, payload, plen, fin, 0);
  if (rv < 0)
    return h2ws_py_raise(h2ws_py_state_of(self_), rv, NULL);
  return pending_size(self);
}

/* A large message sent with nothing else pending gets an output buffer that
 * is a bytes object of the frame's size (h2ws_py_whole_mem): data_to_send()
 * then hands that object over instead of copying it. */
#define SEND_WHOLE_MIN (64 * 1024)

static int out_whole(CodecObject *self, size_t payload) {
  h2ws_buf_free(&self->out);
  size_t cap = payload + H2WS_FRAME_HEADER_MAX;
  uint8_t *p = h2ws_mem_malloc(&h2ws_py_whole_mem, cap);
  if (!p) {
    PyErr_NoMemory();
    return -1;
  }
  self->out.mem = &h2ws_py_whole_mem;
  self->out.data = p;
  self->out.cap = cap;
  return 0;
}

/* Frames `arg` (str: text, bytes-like: binary) as one message; returns the
 * bytes now pending, or -1 with an exception set. */
static Py_ssize_t codec_send_message(PyObject *self_, PyObject *arg) {
  CodecObject *self = (CodecObject *)self_;
  int rv;
  if (PyUnicode_Check(arg)) {
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(arg, &n);
    if (!s)
      return -1;
    rv = h2ws_ws_send_frame(&self->ws, &self->out, H2WS_OP_TEXT, (const uint8_t *)s, (size_t)n,
                            1, 0);
  } else if (PyBytes_CheckExact(arg)) { /* the common case: no buffer export */
    size_t n = (size_t)PyBytes_GET_SIZE(arg);
    if (n >= SEND_WHOLE_MIN && !h2ws_buf_pending(&self->out) && out_whole(self, n) < 0)
      return -1;
    rv = h2ws_ws_send_frame(&self->ws, &self->out, H2WS_OP_BINARY,
                            (const uint8_t *)PyBytes_AS_STRING(arg), (size_t)PyBytes_GET_SIZE(arg),
                            1, 0);
  } else {
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0)
      return -1;
    rv = h2ws_ws_send_frame(&self->ws, &self->out, H2WS_OP_BINARY, b.buf, (size_t)b.len, 1, 0);
    PyBuffer_Release(&b);
  }
  if (rv < 0) {
    h2ws_py_raise(h2ws_py_state_of(self_), rv, NULL);
    return -1;
  }
  return (Py_ssize_t)h2ws_buf_pending(&self->out);
}

static PyObject *codec_send(PyObject *self_, PyObject *arg) {
  Py_ssize_t pending = codec_send_message(self_, arg);
  return pending < 0 ? NULL : PyLong_FromSsize_t(pending);
}

static PyObject *control(PyObject *self_, PyObject *args, unsigned opcode, const char *fmt) {
  CodecObject *self = (CodecObject *)self_;
  Py_buffer b = {0};
  if (!PyArg_ParseTuple(args, fmt, &b))
    return NULL;
  int rv = h2ws_ws_send_frame(&self->ws, &self->out, opcode, b.buf, b.buf ? (size_t)b.len : 0, 1,
                              0);
  if (b.buf)
    PyBuffer_Release(&b);
  if (rv < 0)
    return h2ws_py_raise(h2ws_py_state_of(self_), rv, NULL);
  Py_RETURN_NONE;
}

static PyObject *codec_ping(PyObject *self, PyObject *args) {
  return control(self, args, H2WS_OP_PING, "|y*:ping");
}
static PyObject *codec_pong(PyObject *self, PyObject *args) {
  return control(self, args, H2WS_OP_PONG, "|y*:pong");
}

static PyObject *codec_close(PyObject *self_, PyObject *args, PyObject *kw) {
  CodecObject *self = (CodecObject *)self_;
  static char *kwlist[] = {"code", "reason", NULL};
  PyObject *code_obj = Py_None;
  const char *reason = "";
  Py_ssize_t rlen = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|Os#:close", kwlist, &code_obj, &reason, &rlen))
    return NULL;
  unsigned code;
  if (h2ws_py_close_code(code_obj, &code) < 0)
    return NULL;
  int rv = h2ws_ws_send_close(&self->ws, &self->out, code, (const uint8_t *)reason, (size_t)rlen);
  if (rv < 0)
    return h2ws_py_raise(h2ws_py_state_of(self_), rv,
                            rv == H2WS_ERR_INVALID_ARGUMENT
                                ? "close code not allowed on the wire, or reason over 123 bytes"
                                : NULL);
  Py_RETURN_NONE;
}

static PyObject *codec_data_to_send(PyObject *self_, PyObject *unused) {
  (void)unused;
  return h2ws_py_codec_take(self_);
}

PyObject *h2ws_py_codec_take(PyObject *self_) {
  CodecObject *self = (CodecObject *)self_;
  if (self->out.mem == &h2ws_py_whole_mem) { /* see out_whole */
    PyObject *whole = h2ws_py_whole_take(&self->out);
    self->out.mem = &h2ws_py_mem;
    return whole;
  }
  size_t n = h2ws_buf_pending(&self->out);
  PyObject *b = PyBytes_FromStringAndSize((const char *)h2ws_buf_begin(&self->out), (Py_ssize_t)n);
  if (b)
    h2ws_buf_reset(&self->out, 64 * 1024);
  return b;
}

h2ws_ws *h2ws_py_codec_ws(PyObject *obj) {
  return Py_TYPE(obj)->tp_dealloc == codec_dealloc ? &((CodecObject *)obj)->ws : NULL;
}

Py_ssize_t h2ws_py_codec_send(PyObject *codec, PyObject *message) {
  return codec_send_message(codec, message);
}

PyObject *h2ws_py_codec_event(const h2ws_ws_event *ev) { return event_to_python(ev); }

PyObject *h2ws_py_codec_message(const h2ws_ws_event *ev) {
  const char *p = ev->data ? (const char *)ev->data : "";
  if (ev->type == H2WS_WS_EV_TEXT)
    return PyUnicode_DecodeUTF8(p, (Py_ssize_t)ev->len, "strict");
  if (ev->whole) /* a whole message in a bytes object already: no copy */
    return h2ws_py_whole_message(ev->data, ev->len);
  return PyBytes_FromStringAndSize(p, (Py_ssize_t)ev->len);
}

static PyObject *codec_get_close_sent(PyObject *self, void *c) {
  (void)c;
  return PyBool_FromLong(((CodecObject *)self)->ws.close_sent);
}
static PyObject *codec_get_close_received(PyObject *self, void *c) {
  (void)c;
  return PyBool_FromLong(((CodecObject *)self)->ws.close_received);
}
static PyObject *codec_get_failed(PyObject *self, void *c) {
  (void)c;
  return PyBool_FromLong(((CodecObject *)self)->ws.state == H2WS_WS_ST_FAILED);
}
static PyObject *codec_get_client(PyObject *self, void *c) {
  (void)c;
  return PyBool_FromLong(((CodecObject *)self)->ws.cfg.client);
}

static PyMethodDef codec_methods[] = {
    {"receive_data", codec_receive_data, METH_O,
     "receive_data(data) -> list of events\n\nParses bytes received from the peer; returns "
     "every event they complete, as tuples:\n(EV_TEXT, str), (EV_BINARY, bytes), (EV_PING, "
     "bytes), (EV_PONG, bytes),\n(EV_CLOSE, code, reason), (EV_ERROR, close_code, reason)."},
    {"send", codec_send, METH_O,
     "send(message) -> int: frames a str as a text message, a bytes-like as binary; returns "
     "the bytes now waiting in data_to_send()."},
    {"send_frame", (PyCFunction)(void (*)(void))codec_send_frame, METH_FASTCALL | METH_KEYWORDS,
     "send_frame(opcode, payload, *, fin=True, rsv=0) -> int: one frame, for fragmented "
     "messages; returns the bytes now waiting in data_to_send()."},
    {"ping", codec_ping, METH_VARARGS, "ping(payload=b'')"},
    {"pong", codec_pong, METH_VARARGS, "pong(payload=b'')"},
    {"close", (PyCFunction)(void (*)(void))codec_close, METH_VARARGS | METH_KEYWORDS,
     "close(code=None, reason=''): our close frame (no code: empty payload)."},
    {"data_to_send", codec_data_to_send, METH_NOARGS, "data_to_send() -> bytes to write."},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef codec_getset[] = {
    {"close_sent", codec_get_close_sent, NULL, "our close frame was framed", NULL},
    {"close_received", codec_get_close_received, NULL, "the peer's close frame arrived", NULL},
    {"failed", codec_get_failed, NULL, "the parser stopped on a protocol violation", NULL},
    {"client", codec_get_client, NULL, "client role", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyType_Slot codec_slots[] = {
    {Py_tp_new, codec_new},
    {Py_tp_init, codec_init},
    {Py_tp_dealloc, codec_dealloc},
    {Py_tp_methods, codec_methods},
    {Py_tp_getset, codec_getset},
    {Py_tp_doc, "WebSocketCodec(*, client=False, max_message_size=1048576, max_frame_size=None, "
                "rsv_allowed=0)\n--\n\nOne RFC 6455 endpoint, sans-IO: bytes in, events out, bytes "
                "to send."},
    {0, NULL}};

static PyType_Spec codec_spec = {"h2ws._core.WebSocketCodec", sizeof(CodecObject), 0,
                                 Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE, codec_slots};

/* ---------------------------------------------------------------------- */
/* Module definition                                                       */

static PyMethodDef module_methods[] = {
    {"nghttp2_version", m_nghttp2_version, METH_NOARGS,
     "nghttp2_version() -> str: the version of the libnghttp2 linked at run time."},
    {"build_info", m_build_info, METH_NOARGS,
     "build_info() -> dict: debug/sanitize/coverage switches and the masking implementation."},
    {"mem_live_count", m_mem_live_count, METH_NOARGS,
     "mem_live_count() -> int: live core allocations (debug builds; 0 otherwise)."},
    {"mask", (PyCFunction)(void (*)(void))m_mask, METH_FASTCALL | METH_KEYWORDS,
     "mask(data, key, phase=0) -> bytes: RFC 6455 masking with a 4-byte key."},
    {"mask_into", (PyCFunction)(void (*)(void))m_mask_into, METH_FASTCALL | METH_KEYWORDS,
     "mask_into(buffer, key, phase=0): masks a writable buffer in place."},
    {"utf8_feed", m_utf8_feed, METH_VARARGS,
     "utf8_feed(state, data) -> state: incremental UTF-8 validation (0 accept, 1 reject)."},
    {"utf8_valid", m_utf8_valid, METH_O, "utf8_valid(data) -> bool"},
    {"build_frame", (PyCFunction)(void (*)(void))m_build_frame, METH_FASTCALL | METH_KEYWORDS,
     "build_frame(opcode, payload=b'', *, fin=True, rsv=0, mask=None, length=None) -> bytes\n\n"
     "Any frame, valid or not (for tests); `length` overrides the header's length."},
    {"parse_frame_header", m_parse_frame_header, METH_O,
     "parse_frame_header(data) -> (fin, rsv, opcode, masked, mask, length, header_size) or "
     "None if more bytes are needed."},
    {"websocket_accept", m_websocket_accept, METH_O,
     "websocket_accept(key) -> str: the Sec-WebSocket-Accept for a Sec-WebSocket-Key."},
    {"websocket_key_valid", m_websocket_key_valid, METH_O,
     "websocket_key_valid(key) -> bool: base64 of exactly 16 bytes?"},
    {"close_code_is_valid", m_close_code_is_valid, METH_O,
     "close_code_is_valid(code) -> bool: may this code appear in a close frame?"},
    H2WS_PY_BENCH_METHODS
    {NULL, NULL, 0, NULL}};

static int module_exec(PyObject *m) {
  module_state *st = get_state(m);
  PyObject *exc = PyImport_ImportModule("h2ws.exceptions");
  if (!exc)
    return -1;
  st->protocol_error = PyObject_GetAttrString(exc, "ProtocolError");
  st->invalid_state = PyObject_GetAttrString(exc, "InvalidState");
  st->payload_too_big = PyObject_GetAttrString(exc, "PayloadTooBig");
  Py_DECREF(exc);
  if (!st->protocol_error || !st->invalid_state || !st->payload_too_big)
    return -1;
  st->codec_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &codec_spec, NULL);
  if (!st->codec_type)
    return -1;
  if (PyModule_AddType(m, st->codec_type) < 0)
    return -1;
  if (h2ws_py_connection_add(m, st) < 0)
    return -1;
  if (h2ws_py_carrier_add(m, st) < 0)
    return -1;
  struct {
    const char *name;
    long value;
  } consts[] = {{"EV_TEXT", H2WS_WS_EV_TEXT},
                {"EV_BINARY", H2WS_WS_EV_BINARY},
                {"EV_PING", H2WS_WS_EV_PING},
                {"EV_PONG", H2WS_WS_EV_PONG},
                {"EV_CLOSE", H2WS_WS_EV_CLOSE},
                {"EV_ERROR", H2WS_WS_EV_ERROR},
                {"OP_CONT", H2WS_OP_CONT},
                {"OP_TEXT", H2WS_OP_TEXT},
                {"OP_BINARY", H2WS_OP_BINARY},
                {"OP_CLOSE", H2WS_OP_CLOSE},
                {"OP_PING", H2WS_OP_PING},
                {"OP_PONG", H2WS_OP_PONG},
                {"RSV1", H2WS_RSV1},
                {"RSV2", H2WS_RSV2},
                {"RSV3", H2WS_RSV3},
                {"DEFAULT_MAX_MESSAGE_SIZE", H2WS_WS_DEFAULT_MAX_MESSAGE}};
  for (size_t i = 0; i < sizeof consts / sizeof consts[0]; i++)
    if (PyModule_AddIntConstant(m, consts[i].name, consts[i].value) < 0)
      return -1;
  return 0;
}

static int module_traverse(PyObject *m, visitproc visit, void *arg) {
  module_state *st = get_state(m);
  Py_VISIT(st->codec_type);
  Py_VISIT(st->connection_type);
  Py_VISIT(st->piece_type);
  Py_VISIT(st->protocol_error);
  Py_VISIT(st->invalid_state);
  Py_VISIT(st->payload_too_big);
  return 0;
}

static int module_clear(PyObject *m) {
  module_state *st = get_state(m);
  Py_CLEAR(st->codec_type);
  Py_CLEAR(st->connection_type);
  Py_CLEAR(st->piece_type);
  Py_CLEAR(st->protocol_error);
  Py_CLEAR(st->invalid_state);
  Py_CLEAR(st->payload_too_big);
  return 0;
}

static void module_free(void *m) {
  module_clear((PyObject *)m);
  h2ws_py_carrier_names_free(get_state((PyObject *)m));
}

static PyModuleDef_Slot module_slots[] = {{Py_mod_exec, module_exec}, {0, NULL}};

struct PyModuleDef h2ws_py_module_def = {PyModuleDef_HEAD_INIT,
                                        "h2ws._core",
                                        "The C core of h2ws: RFC 6455 codec, HTTP/2 (RFC 8441) "
                                        "session glue, sans-IO.",
                                        sizeof(module_state),
                                        module_methods,
                                        module_slots,
                                        module_traverse,
                                        module_clear,
                                        module_free};

module_state *h2ws_py_state_of(PyObject *self) {
  PyObject *m = PyType_GetModuleByDef(Py_TYPE(self), &h2ws_py_module_def);
  return m ? get_state(m) : NULL;
}

PyMODINIT_FUNC PyInit__core(void) { return PyModuleDef_Init(&h2ws_py_module_def); }
