/*
 * connection.c - h2ws._core.H2Connection: the HTTP/2 session of the core
 * (csrc/core/session.h), server role, as a sans-IO Python object.
 *
 * Events come back as tuples, collected while the core runs and returned
 * all at once: receive_data() returns them; events raised while sending
 * (a stream closing after our END_STREAM, a queue draining) wait for
 * events() or the next receive_data().
 *
 * Also h2ws._core.WakeBatch and Waiter, what WebSocket.recv() awaits
 * instead of an asyncio.Future (see below).
 */
#include "binding.h"

#include <structmember.h>

#include "../core/error.h"
#include "../core/session.h"

/* The output buffer kept between data_to_send() calls. */
#define OUT_KEEP (256 * 1024)
/* Outputs that may carry this much payload go through data_to_send_large. */
#define LARGE_OUT H2WS_SESSION_LARGE_OUTPUT

typedef struct {
  PyObject_HEAD
  h2ws_session *session;
  h2ws_buf out;
  h2ws_buf refs;    /* h2ws_session_ref records of data_to_write(), during the call */
  PyObject *events; /* list being filled by the callback */
  module_state *st;
} ConnObject;

/* ---------------------------------------------------------------------- */

static PyObject *headers_to_list(const h2ws_session_event *ev) {
  PyObject *list = PyList_New((Py_ssize_t)ev->nheaders);
  if (!list)
    return NULL;
  size_t pos = 0;
  h2ws_header h;
  Py_ssize_t i = 0;
  while (i < (Py_ssize_t)ev->nheaders && h2ws_header_next(ev->headers, ev->headers_len, &pos, &h)) {
    PyObject *t = Py_BuildValue("(y#y#)", (const char *)h.name, (Py_ssize_t)h.namelen,
                                (const char *)h.value, (Py_ssize_t)h.valuelen);
    if (!t) {
      Py_DECREF(list);
      return NULL;
    }
    PyList_SET_ITEM(list, i++, t);
  }
  return list;
}

static PyObject *make_text(const uint8_t *p, size_t n) {
  return PyUnicode_DecodeUTF8(p ? (const char *)p : "", (Py_ssize_t)n, "strict");
}

/* (type, stream_id, message, credit): the hot path, built without
 * Py_BuildValue's format parsing. Steals `msg`. */
static PyObject *message_tuple(const h2ws_session_event *ev, PyObject *msg) {
  if (!msg)
    return NULL;
  PyObject *t = PyTuple_New(4);
  PyObject *type = PyLong_FromLong(ev->type); /* small ints: cached */
  PyObject *sid = PyLong_FromLong(ev->stream_id);
  PyObject *credit = PyLong_FromSize_t(ev->credit);
  if (!t || !type || !sid || !credit) {
    Py_XDECREF(t);
    Py_XDECREF(type);
    Py_XDECREF(sid);
    Py_XDECREF(credit);
    Py_DECREF(msg);
    return NULL;
  }
  PyTuple_SET_ITEM(t, 0, type);
  PyTuple_SET_ITEM(t, 1, sid);
  PyTuple_SET_ITEM(t, 2, msg);
  PyTuple_SET_ITEM(t, 3, credit);
  return t;
}

static PyObject *event_tuple(const h2ws_session_event *ev) {
  const char *p = ev->data ? (const char *)ev->data : "";
  Py_ssize_t n = (Py_ssize_t)ev->len;
  switch (ev->type) {
  case H2WS_SEV_REQUEST:
  case H2WS_SEV_WEBSOCKET: {
    PyObject *hl = headers_to_list(ev);
    if (!hl)
      return NULL;
    if (ev->type == H2WS_SEV_WEBSOCKET)
      return Py_BuildValue("(iiN)", ev->type, ev->stream_id, hl);
    return Py_BuildValue("(iiNO)", ev->type, ev->stream_id, hl, ev->code ? Py_True : Py_False);
  }
  case H2WS_SEV_TEXT:
    return message_tuple(ev, make_text(ev->data, ev->len));
  case H2WS_SEV_BINARY:
    if (ev->code) /* a whole message in a bytes object already: no copy */
      return message_tuple(ev, h2ws_py_whole_message(ev->data, ev->len));
    return message_tuple(ev, PyBytes_FromStringAndSize(p, n));
  case H2WS_SEV_BODY:
    return Py_BuildValue("(iiy#n)", ev->type, ev->stream_id, p, n, (Py_ssize_t)ev->credit);
  case H2WS_SEV_PONG:
    return Py_BuildValue("(iiy#)", ev->type, ev->stream_id, p, n);
  case H2WS_SEV_CLOSE:
    return Py_BuildValue("(iiIN)", ev->type, ev->stream_id, ev->code, make_text(ev->data, ev->len));
  case H2WS_SEV_WS_FAILED:
    return Py_BuildValue("(iiIs)", ev->type, ev->stream_id, ev->code, ev->reason);
  case H2WS_SEV_STREAM_END:
  case H2WS_SEV_GOAWAY:
    return Py_BuildValue("(iiI)", ev->type, ev->stream_id, ev->code);
  case H2WS_SEV_SETTINGS:
    return Py_BuildValue("(iiIn)", ev->type, ev->stream_id, ev->code, (Py_ssize_t)ev->credit);
  case H2WS_SEV_RESPONSE: {
    PyObject *hl = headers_to_list(ev);
    if (!hl)
      return NULL;
    return Py_BuildValue("(iiINi)", ev->type, ev->stream_id, ev->code, hl, (int)ev->credit);
  }
  case H2WS_SEV_BODY_END:
  case H2WS_SEV_RESUME_WRITING:
  case H2WS_SEV_PEER_ENDED:
    return Py_BuildValue("(ii)", ev->type, ev->stream_id);
  default:
    PyErr_SetString(PyExc_SystemError, "unknown session event");
    return NULL;
  }
}

/* The core's event callback: one tuple appended per event. */
static int on_event(const h2ws_session_event *ev, void *ud) {
  ConnObject *self = ud;
  PyObject *t = event_tuple(ev);
  if (!t)
    return -1;
  int rv = PyList_Append(self->events, t);
  Py_DECREF(t);
  return rv;
}

/* Returns the events collected so far and starts a new list. */
static PyObject *take_events(ConnObject *self) {
  PyObject *fresh = PyList_New(0);
  if (!fresh)
    return NULL;
  PyObject *ev = self->events;
  self->events = fresh;
  return ev;
}

/* Raises for a failed core call; keeps a Python exception from a callback. */
static PyObject *fail(ConnObject *self, int rv, const char *detail) {
  if (rv == H2WS_ERR_CALLBACK && PyErr_Occurred())
    return NULL;
  return h2ws_py_raise(self->st, rv, detail);
}

/* ---------------------------------------------------------------------- */

static int get_u32(PyObject *o, uint32_t *out, const char *name) {
  if (!o)
    return 0;
  unsigned long v = PyLong_AsUnsignedLong(o);
  if (PyErr_Occurred() || v > 0xFFFFFFFFul) {
    PyErr_Clear();
    PyErr_Format(PyExc_ValueError, "%s must be an int from 0 to 2**32-1", name);
    return -1;
  }
  *out = (uint32_t)v;
  return 0;
}

static int get_u64_opt(PyObject *o, uint64_t *out, const char *name) {
  if (!o)
    return 0;
  if (o == Py_None) {
    *out = 0;
    return 0;
  }
  unsigned long long v = PyLong_AsUnsignedLongLong(o);
  if (PyErr_Occurred()) {
    PyErr_Clear();
    PyErr_Format(PyExc_ValueError, "%s must be a non-negative int or None", name);
    return -1;
  }
  *out = v;
  return 0;
}

static int conn_init(PyObject *self_, PyObject *args, PyObject *kw) {
  ConnObject *self = (ConnObject *)self_;
  static char *kwlist[] = {"client", "enable_connect_protocol", "max_concurrent_streams",
                           "initial_window_size",     "connection_window_size",
                           "max_header_list_size",    "max_frame_size",
                           "write_high_water",        "max_message_size",
                           NULL};
  int client = 0, ecp = 1;
  PyObject *mcs = NULL, *iws = NULL, *cws = NULL, *mhl = NULL, *mfs = NULL, *hw = NULL,
           *mms = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|$ppOOOOOOO:H2Connection", kwlist, &client, &ecp, &mcs, &iws,
                                   &cws, &mhl, &mfs, &hw, &mms))
    return -1;
  if (self->session) {
    PyErr_SetString(PyExc_RuntimeError, "H2Connection is already initialised");
    return -1;
  }
  h2ws_session_config cfg;
  h2ws_session_config_init(&cfg);
  cfg.enable_connect_protocol = ecp;
  uint32_t hw32 = (uint32_t)cfg.write_high_water;
  if (get_u32(mcs, &cfg.max_concurrent_streams, "max_concurrent_streams") ||
      get_u32(iws, &cfg.initial_window_size, "initial_window_size") ||
      get_u32(cws, &cfg.connection_window_size, "connection_window_size") ||
      get_u32(mhl, &cfg.max_header_list_size, "max_header_list_size") ||
      get_u32(mfs, &cfg.max_frame_size, "max_frame_size") || get_u32(hw, &hw32, "write_high_water") ||
      get_u64_opt(mms, &cfg.ws.max_message_size, "max_message_size"))
    return -1;
  cfg.write_high_water = hw32;
  cfg.ws.whole_mem = &h2ws_py_whole_mem; /* large messages become bytes in place */
  self->st = h2ws_py_state_of(self_);
  int rv = client ? h2ws_session_client_new(&self->session, &cfg, &h2ws_py_mem, on_event, self)
                  : h2ws_session_server_new(&self->session, &cfg, &h2ws_py_mem, on_event, self);
  if (rv) {
    self->session = NULL;
    h2ws_py_raise(self->st, rv,
                  rv == H2WS_ERR_INVALID_ARGUMENT
                      ? "max_frame_size must be 16384..16777215 and windows < 2**31"
                      : NULL);
    return -1;
  }
  return 0;
}

static PyObject *conn_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
  (void)args;
  (void)kw;
  ConnObject *self = (ConnObject *)type->tp_alloc(type, 0);
  if (!self)
    return NULL;
  h2ws_buf_init(&self->out, &h2ws_py_mem);
  h2ws_buf_init(&self->refs, &h2ws_py_mem);
  self->events = PyList_New(0);
  if (!self->events) {
    Py_DECREF(self);
    return NULL;
  }
  return (PyObject *)self;
}

static void conn_dealloc(PyObject *self_) {
  ConnObject *self = (ConnObject *)self_;
  PyTypeObject *tp = Py_TYPE(self_);
  PyObject_GC_UnTrack(self_);
  h2ws_session_del(self->session);
  self->session = NULL;
  h2ws_buf_free(&self->out);
  h2ws_buf_free(&self->refs); /* empty between calls: nothing held */
  Py_CLEAR(self->events);
  tp->tp_free(self_);
  Py_DECREF(tp);
}

static int conn_traverse(PyObject *self_, visitproc visit, void *arg) {
  ConnObject *self = (ConnObject *)self_;
  Py_VISIT(Py_TYPE(self_));
  Py_VISIT(self->events);
  return 0;
}

static int conn_clear(PyObject *self_) {
  ConnObject *self = (ConnObject *)self_;
  Py_CLEAR(self->events);
  return 0;
}

#define CHECK_SESSION(self)                                                          \
  do {                                                                               \
    if (!(self)->session || !(self)->events) {                                       \
      PyErr_SetString(PyExc_RuntimeError, "H2Connection is not initialised");        \
      return NULL;                                                                   \
    }                                                                                \
  } while (0)

static PyObject *conn_receive_data(PyObject *self_, PyObject *arg) {
  ConnObject *self = (ConnObject *)self_;
  CHECK_SESSION(self);
  Py_buffer data;
  if (PyObject_GetBuffer(arg, &data, PyBUF_SIMPLE) < 0)
    return NULL;
  const char *detail = NULL;
  int rv = h2ws_session_recv(self->session, data.buf, (size_t)data.len, &detail);
  PyBuffer_Release(&data);
  if (rv < 0)
    return fail(self, rv, detail);
  return take_events(self);
}

/* data_to_send() for a large output (bound: h2ws_session_output_bound):
 * the frames are written straight into a bytes object sized for them
 * beforehand, which is returned as is (shrunk to fit): the payload is
 * copied once, from the stream queues, instead of twice. */
static PyObject *data_to_send_large(ConnObject *self, size_t bound) {
  h2ws_buf big;
  h2ws_buf_init(&big, &h2ws_py_whole_mem);
  /* DATA frame headers (9 bytes per frame of at least 16 KiB) and the
   * other frames of the call fit in the slack; beyond it the buffer grows. */
  size_t cap = bound + bound / 1024 + 4096;
  big.data = h2ws_mem_malloc(big.mem, cap); /* exact: reserve would round up to 2^k */
  if (!big.data)
    return PyErr_NoMemory();
  big.cap = cap;
  int rv = h2ws_session_send(self->session, &big);
  if (rv < 0) {
    h2ws_buf_free(&big);
    return fail(self, rv, NULL);
  }
  return h2ws_py_whole_take(&big);
}

static PyObject *conn_data_to_send(PyObject *self_, PyObject *unused) {
  (void)unused;
  ConnObject *self = (ConnObject *)self_;
  CHECK_SESSION(self);
  size_t bound = h2ws_session_output_bound(self->session);
  if (bound >= LARGE_OUT && !h2ws_buf_pending(&self->out))
    return data_to_send_large(self, bound);
  int rv = h2ws_session_send(self->session, &self->out);
  if (rv < 0)
    return fail(self, rv, NULL);
  PyObject *b = PyBytes_FromStringAndSize((const char *)h2ws_buf_begin(&self->out),
                                          (Py_ssize_t)h2ws_buf_pending(&self->out));
  if (b)
    h2ws_buf_reset(&self->out, OUT_KEEP);
  return b;
}

/* ---------------------------------------------------------------------- */
/* data_to_write(): scatter output                                         */

/*
 * A piece of a message queued by reference, as data_to_write() hands it out
 * (inside a memoryview): it exports `len` bytes at `data`, which belong to
 * `owner` (the message's bytes object, held).
 */
typedef struct {
  PyObject_HEAD
  PyObject *owner;
  const uint8_t *data;
  Py_ssize_t len;
} PieceObject;

static int piece_getbuffer(PyObject *self, Py_buffer *view, int flags) {
  PieceObject *p = (PieceObject *)self;
  return PyBuffer_FillInfo(view, self, (void *)p->data, p->len, 1, flags);
}

static void piece_dealloc(PyObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  Py_XDECREF(((PieceObject *)self)->owner);
  PyObject_Free(self);
  Py_DECREF(tp);
}

static PyType_Slot piece_slots[] = {
    {Py_bf_getbuffer, piece_getbuffer},
    {Py_tp_dealloc, piece_dealloc},
    {Py_tp_doc, "A piece of a message queued by reference (read-only buffer)."},
    {0, NULL}};

static PyType_Spec piece_spec = {"h2ws._core._Piece", sizeof(PieceObject), 0,
                                 Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE |
                                     Py_TPFLAGS_DISALLOW_INSTANTIATION,
                                 piece_slots};

/* What the session calls for each piece it records (GIL held: inside our
 * own call). */
static void retain_ref(void *obj) { Py_INCREF((PyObject *)obj); }

/* A memoryview over one recorded piece; it holds the owner. */
static PyObject *piece_view(ConnObject *self, const h2ws_session_ref *r) {
  PieceObject *p = PyObject_New(PieceObject, self->st->piece_type);
  if (!p)
    return NULL;
  p->owner = Py_NewRef((PyObject *)r->ctx);
  p->data = r->data;
  p->len = (Py_ssize_t)r->len;
  PyObject *mv = PyMemoryView_FromObject((PyObject *)p);
  Py_DECREF(p);
  return mv;
}

static int append_new(PyObject *list, PyObject *item) {
  if (!item)
    return -1;
  int rv = PyList_Append(list, item);
  Py_DECREF(item);
  return rv;
}

/* The list of buffers to write: out[0..len) with the recorded pieces
 * inserted at their offsets. Gives back the session's hold of every record
 * and empties self->refs, whatever happens. */
static PyObject *scatter_list(ConnObject *self, const uint8_t *base, size_t len) {
  size_t n = self->refs.len / sizeof(h2ws_session_ref);
  PyObject *list = PyList_New(0);
  size_t pos = 0;
  for (size_t i = 0; i < n && list; i++) {
    h2ws_session_ref r;
    memcpy(&r, self->refs.data + i * sizeof r, sizeof r);
    if ((r.at > pos &&
         append_new(list, PyBytes_FromStringAndSize((const char *)base + pos,
                                                    (Py_ssize_t)(r.at - pos))) < 0) ||
        append_new(list, piece_view(self, &r)) < 0)
      Py_CLEAR(list);
    pos = r.at;
  }
  if (list && len > pos &&
      append_new(list, PyBytes_FromStringAndSize((const char *)base + pos,
                                                 (Py_ssize_t)(len - pos))) < 0)
    Py_CLEAR(list);
  for (size_t i = 0; i < n; i++) {
    h2ws_session_ref r;
    memcpy(&r, self->refs.data + i * sizeof r, sizeof r);
    Py_DECREF((PyObject *)r.ctx); /* the hold retain_ref took */
  }
  h2ws_buf_reset(&self->refs, OUT_KEEP);
  return list;
}

/* Outputs that may carry less payload than this are copied as by
 * data_to_send(): a 100 KB echo cost more server CPU in pieces (the Python
 * objects of each piece, in the binding and in the transport) than in one
 * copy. */
#define SCATTER_MIN (256 * 1024)

static PyObject *conn_data_to_write(PyObject *self_, PyObject *unused) {
  ConnObject *self = (ConnObject *)self_;
  CHECK_SESSION(self);
  if (h2ws_session_output_bound(self->session) < SCATTER_MIN)
    return conn_data_to_send(self_, unused);
  size_t bound = h2ws_session_output_bound_refs(self->session);
  int rv;
  if (bound >= LARGE_OUT && !h2ws_buf_pending(&self->out)) {
    /* As data_to_send_large: copied payload straight into a bytes object. */
    h2ws_buf big;
    h2ws_buf_init(&big, &h2ws_py_whole_mem);
    size_t cap = bound + bound / 1024 + 4096;
    big.data = h2ws_mem_malloc(big.mem, cap);
    if (!big.data)
      return PyErr_NoMemory();
    big.cap = cap;
    rv = h2ws_session_send_refs(self->session, &big, &self->refs, retain_ref);
    if (rv < 0 || self->refs.len) {
      PyObject *list = scatter_list(self, h2ws_buf_begin(&big), h2ws_buf_pending(&big));
      h2ws_buf_free(&big);
      if (rv < 0) {
        Py_XDECREF(list);
        return fail(self, rv, NULL);
      }
      return list;
    }
    return h2ws_py_whole_take(&big);
  }
  rv = h2ws_session_send_refs(self->session, &self->out, &self->refs, retain_ref);
  PyObject *res;
  if (rv < 0 || self->refs.len)
    res = scatter_list(self, h2ws_buf_begin(&self->out), h2ws_buf_pending(&self->out));
  else
    res = PyBytes_FromStringAndSize((const char *)h2ws_buf_begin(&self->out),
                                    (Py_ssize_t)h2ws_buf_pending(&self->out));
  h2ws_buf_reset(&self->out, OUT_KEEP);
  if (rv < 0) {
    Py_XDECREF(res);
    return fail(self, rv, NULL);
  }
  return res;
}

static PyObject *conn_events(PyObject *self_, PyObject *unused) {
  (void)unused;
  ConnObject *self = (ConnObject *)self_;
  CHECK_SESSION(self);
  return take_events(self);
}

/* Converts a sequence of (name, value) pairs (bytes or str) to headers.
 * The returned array (PyMem) borrows from `fast`, which the caller keeps
 * alive (and releases) together with the pair tuples it holds. */
static h2ws_header *convert_headers(PyObject *seq, PyObject **fast_out, size_t *n_out) {
  *fast_out = NULL;
  *n_out = 0;
  if (!seq || seq == Py_None)
    return PyMem_Malloc(1);
  PyObject *fast = PySequence_Fast(seq, "headers must be a sequence of (name, value) pairs");
  if (!fast)
    return NULL;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
  h2ws_header *hv = PyMem_Malloc(sizeof *hv * (size_t)(n ? n : 1));
  if (!hv) {
    Py_DECREF(fast);
    PyErr_NoMemory();
    return NULL;
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *pair = PySequence_Fast_GET_ITEM(fast, i);
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
      PyErr_SetString(PyExc_TypeError, "each header must be a (name, value) tuple");
      goto error;
    }
    for (int j = 0; j < 2; j++) {
      PyObject *o = PyTuple_GET_ITEM(pair, j);
      const char *p;
      Py_ssize_t len;
      if (PyBytes_Check(o)) {
        p = PyBytes_AS_STRING(o);
        len = PyBytes_GET_SIZE(o);
      } else if (PyUnicode_Check(o)) {
        p = PyUnicode_AsUTF8AndSize(o, &len); /* cached on the str: lives with it */
        if (!p)
          goto error;
      } else {
        PyErr_SetString(PyExc_TypeError, "header names and values must be bytes or str");
        goto error;
      }
      if (j == 0) {
        hv[i].name = (const uint8_t *)p;
        hv[i].namelen = (size_t)len;
      } else {
        hv[i].value = (const uint8_t *)p;
        hv[i].valuelen = (size_t)len;
      }
    }
  }
  *fast_out = fast;
  *n_out = (size_t)n;
  return hv;
error:
  PyMem_Free(hv);
  Py_DECREF(fast);
  return NULL;
}

static PyObject *status_result(ConnObject *self, int rv) {
  if (rv < 0)
    return fail(self, rv, NULL);
  return PyBool_FromLong(rv == 1);
}

static PyObject *conn_accept(PyObject *self_, PyObject *args, PyObject *kw) {
  ConnObject *self = (ConnObject *)self_;
  CHECK_SESSION(self);
  static char *kwlist[] = {"stream_id", "headers", NULL};
  int sid;
  PyObject *hdrs = NULL, *fast;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "i|O:accept", kwlist, &sid, &hdrs))
    return NULL;
  size_t n;
  h2ws_header *hv = convert_headers(hdrs, &fast, &n);
  if (!hv)
    return NULL;
  int rv = h2ws_session_ws_accept(self->session, sid, hv, n);
  PyMem_Free(hv);
  Py_XDECREF(fast);
  if (rv < 0)
    return fail(self, rv, rv == H2WS_ERR_INVALID_STATE ? "not a pending WebSocket request" : NULL);
  Py_RETURN_NONE;
}

static PyObject *conn_connect_websocket(PyObject *self_, PyObject *arg) {
  ConnObject *self = (ConnObject *)self_;
  CHECK_SESSION(self);
  PyObject *fast;
  size_t n;
  h2ws_header *hv = convert_headers(arg, &fast, &n);
  if (!hv)
    return NULL;
  int32_t sid = 0;
  int rv = h2ws_session_ws_connect(self->session, hv, n, &sid);
  PyMem_Free(hv);
  Py_XDECREF(fast);
  if (rv < 0)
    return fail(self, rv,
                rv == H2WS_ERR_INVALID_STATE ? "no new stream can be opened on this connection"
                                             : NULL);
  return PyLong_FromLong(sid);
}

static PyObject *conn_respond(PyObject *self_, PyObject *args, PyObject *kw) {
  ConnObject *self = (ConnObject *)self_;
  CHECK_SESSION(self);
  static char *kwlist[] = {"stream_id", "status", "headers", "end_stream", NULL};
  int sid, end = 0;
  unsigned int status;
  PyObject *hdrs = NULL, *fast;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "iI|O$p:respond", kwlist, &sid, &status, &hdrs, &end))
    return NULL;
  size_t n;
  h2ws_header *hv = convert_headers(hdrs, &fast, &n);
  if (!hv)
    return NULL;
  int rv = h2ws_session_respond(self->session, sid, status, hv, n, end);
  PyMem_Free(hv);
  Py_XDECREF(fast);
  if (rv < 0)
    return fail(self, rv,
                rv == H2WS_ERR_INVALID_ARGUMENT ? "bad status (a 2xx accepts a WebSocket: use accept)"
                : rv == H2WS_ERR_INVALID_STATE  ? "stream cannot be answered now"
                                                : NULL);
  Py_RETURN_NONE;
}

static PyObject *conn_send_body(PyObject *self_, PyObject *args, PyObject *kw) {
  ConnObject *self = (ConnObject *)self_;
  CHECK_SESSION(self);
  static char *kwlist[] = {"stream_id", "data", "end_stream", NULL};
  int sid, end = 0;
  Py_buffer b;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "iy*|$p:send_body", kwlist, &sid, &b, &end))
    return NULL;
  int rv = h2ws_session_send_body(self->session, sid, b.buf, (size_t)b.len, end);
  PyBuffer_Release(&b);
  return status_result(self, rv);
}

/* A stream id argument of a METH_FASTCALL method: an int in C int range. */
static int get_sid(PyObject *o, int *out) {
  long v = PyLong_AsLong(o);
  if (v == -1 && PyErr_Occurred())
    return -1;
  if (v < INT_MIN || v > INT_MAX) {
    PyErr_SetString(PyExc_OverflowError, "stream_id out of range");
    return -1;
  }
  *out = (int)v;
  return 0;
}

/* Messages from this size on are sent by reference (h2ws_session_ws_send_ref). */
#define SEND_REF_MIN (64 * 1024)

/* Drops the reference send() took on a message queued by reference. The
 * core calls it from inside a call of ours, so with the GIL held. */
static void release_ref(void *obj) { Py_DECREF((PyObject *)obj); }

static PyObject *conn_send(PyObject *self_, PyObject *const *args, Py_ssize_t nargs) {
  ConnObject *self = (ConnObject *)self_;
  CHECK_SESSION(self);
  if (nargs != 2) {
    PyErr_Format(PyExc_TypeError, "send() takes exactly 2 arguments (%zd given)", nargs);
    return NULL;
  }
  int sid;
  PyObject *msg = args[1];
  if (get_sid(args[0], &sid) < 0)
    return NULL;
  int rv;
  if (PyBytes_CheckExact(msg) && PyBytes_GET_SIZE(msg) >= SEND_REF_MIN) {
    /* Large: queued by reference (bytes are immutable), the payload goes
     * from the object straight into the DATA frames. */
    rv = h2ws_session_ws_send_ref(self->session, sid, (const uint8_t *)PyBytes_AS_STRING(msg),
                                  (size_t)PyBytes_GET_SIZE(msg), release_ref, Py_NewRef(msg));
    if (rv < 0)
      Py_DECREF(msg);
  } else if (PyBytes_CheckExact(msg)) {
    rv = h2ws_session_ws_send(self->session, sid, H2WS_OP_BINARY,
                              (const uint8_t *)PyBytes_AS_STRING(msg),
                              (size_t)PyBytes_GET_SIZE(msg), 1);
  } else if (PyUnicode_Check(msg)) {
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(msg, &n);
    if (!s)
      return NULL;
    rv = h2ws_session_ws_send(self->session, sid, H2WS_OP_TEXT, (const uint8_t *)s, (size_t)n, 1);
  } else {
    Py_buffer b;
    if (PyObject_GetBuffer(msg, &b, PyBUF_SIMPLE) < 0)
      return NULL;
    rv = h2ws_session_ws_send(self->session, sid, H2WS_OP_BINARY, b.buf, (size_t)b.len, 1);
    PyBuffer_Release(&b);
  }
  return status_result(self, rv);
}

static PyObject *conn_send_frame(PyObject *self_, PyObject *args, PyObject *kw) {
  ConnObject *self = (ConnObject *)self_;
  CHECK_SESSION(self);
  static char *kwlist[] = {"stream_id", "opcode", "payload", "fin", NULL};
  int sid, fin = 1, opcode;
  Py_buffer b;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "iiy*|$p:send_frame", kwlist, &sid, &opcode, &b, &fin))
    return NULL;
  if (opcode < 0 || opcode > 15) {
    PyBuffer_Release(&b);
    PyErr_SetString(PyExc_ValueError, "opcode must be 0..15");
    return NULL;
  }
  int rv = h2ws_session_ws_send(self->session, sid, (unsigned)opcode, b.buf, (size_t)b.len, fin);
  PyBuffer_Release(&b);
  return status_result(self, rv);
}

static PyObject *conn_close(PyObject *self_, PyObject *args, PyObject *kw) {
  ConnObject *self = (ConnObject *)self_;
  CHECK_SESSION(self);
  static char *kwlist[] = {"stream_id", "code", "reason", NULL};
  int sid;
  PyObject *code_obj = Py_None;
  const char *reason = "";
  Py_ssize_t rlen = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "i|Os#:close", kwlist, &sid, &code_obj, &reason,
                                   &rlen))
    return NULL;
  unsigned code;
  if (h2ws_py_close_code(code_obj, &code) < 0)
    return NULL;
  int rv = h2ws_session_ws_close(self->session, sid, code, (const uint8_t *)reason, (size_t)rlen);
  if (rv < 0)
    return fail(self, rv,
                rv == H2WS_ERR_INVALID_ARGUMENT
                    ? "close code not allowed on the wire, or reason over 123 bytes"
                    : NULL);
  Py_RETURN_NONE;
}

static PyObject *conn_reset(PyObject *self_, PyObject *args, PyObject *kw) {
  ConnObject *self = (ConnObject *)self_;
  CHECK_SESSION(self);
  static char *kwlist[] = {"stream_id", "error_code", NULL};
  int sid;
  unsigned int code = 8; /* CANCEL */
  if (!PyArg_ParseTupleAndKeywords(args, kw, "i|I:reset", kwlist, &sid, &code))
    return NULL;
  int rv = h2ws_session_reset(self->session, sid, code);
  if (rv < 0 && rv != H2WS_ERR_INVALID_STATE)
    return fail(self, rv, NULL);
  return PyBool_FromLong(rv == 0);
}

static PyObject *conn_consume(PyObject *self_, PyObject *const *args, Py_ssize_t nargs) {
  ConnObject *self = (ConnObject *)self_;
  CHECK_SESSION(self);
  if (nargs != 2) {
    PyErr_Format(PyExc_TypeError, "consume() takes exactly 2 arguments (%zd given)", nargs);
    return NULL;
  }
  int sid;
  if (get_sid(args[0], &sid) < 0)
    return NULL;
  Py_ssize_t credit = PyLong_AsSsize_t(args[1]);
  if (credit == -1 && PyErr_Occurred())
    return NULL;
  if (credit < 0) {
    PyErr_SetString(PyExc_ValueError, "credit must be >= 0");
    return NULL;
  }
  int rv = h2ws_session_consume(self->session, sid, (size_t)credit);
  if (rv < 0)
    return fail(self, rv, NULL);
  Py_RETURN_NONE;
}

static PyObject *conn_shutdown_notice(PyObject *self_, PyObject *unused) {
  (void)unused;
  ConnObject *self = (ConnObject *)self_;
  CHECK_SESSION(self);
  int rv = h2ws_session_shutdown_notice(self->session);
  if (rv < 0)
    return fail(self, rv, NULL);
  Py_RETURN_NONE;
}

static PyObject *conn_goaway(PyObject *self_, PyObject *args) {
  ConnObject *self = (ConnObject *)self_;
  CHECK_SESSION(self);
  unsigned int code = 0;
  if (!PyArg_ParseTuple(args, "|I:goaway", &code))
    return NULL;
  int rv = h2ws_session_goaway(self->session, code);
  if (rv < 0)
    return fail(self, rv, NULL);
  Py_RETURN_NONE;
}

static PyObject *conn_buffered(PyObject *self_, PyObject *arg) {
  ConnObject *self = (ConnObject *)self_;
  CHECK_SESSION(self);
  long sid = PyLong_AsLong(arg);
  if (sid == -1 && PyErr_Occurred())
    return NULL;
  return PyLong_FromSize_t(h2ws_session_stream_buffered(self->session, (int32_t)sid));
}

static PyObject *conn_get_want_io(PyObject *self_, void *c) {
  (void)c;
  ConnObject *self = (ConnObject *)self_;
  return PyBool_FromLong(self->session && h2ws_session_want_io(self->session));
}

static PyObject *conn_get_has_events(PyObject *self_, void *c) {
  (void)c;
  ConnObject *self = (ConnObject *)self_;
  return PyBool_FromLong(self->events && PyList_GET_SIZE(self->events) > 0);
}

static PyObject *conn_get_open_streams(PyObject *self_, void *c) {
  (void)c;
  ConnObject *self = (ConnObject *)self_;
  return PyLong_FromSize_t(self->session ? h2ws_session_open_streams(self->session) : 0);
}

static PyMethodDef conn_methods[] = {
    {"receive_data", conn_receive_data, METH_O,
     "receive_data(data) -> list of events. Raises ProtocolError when the connection must end "
     "(send data_to_send(), which then holds a GOAWAY, and close)."},
    {"data_to_send", conn_data_to_send, METH_NOARGS, "data_to_send() -> bytes to write now."},
    {"data_to_write", conn_data_to_write, METH_NOARGS,
     "data_to_write() -> bytes, or a list of bytes and memoryviews to write in order "
     "(transport.writelines): as data_to_send(), but when 256 KiB or more of messages sent "
     "as bytes may go out, they are not copied: the list holds views of them between the "
     "frame headers."},
    {"events", conn_events, METH_NOARGS,
     "events() -> events raised since the last receive_data() (e.g. by data_to_send())."},
    {"accept", (PyCFunction)(void (*)(void))conn_accept, METH_VARARGS | METH_KEYWORDS,
     "accept(stream_id, headers=()): answer a WebSocket request with :status 200."},
    {"connect_websocket", conn_connect_websocket, METH_O,
     "connect_websocket(headers) -> stream_id: client role, an extended CONNECT (RFC 8441)."},
    {"respond", (PyCFunction)(void (*)(void))conn_respond, METH_VARARGS | METH_KEYWORDS,
     "respond(stream_id, status, headers=(), *, end_stream=False)"},
    {"send_body", (PyCFunction)(void (*)(void))conn_send_body, METH_VARARGS | METH_KEYWORDS,
     "send_body(stream_id, data, *, end_stream=False) -> paused: bool"},
    {"send", (PyCFunction)(void (*)(void))conn_send, METH_FASTCALL,
     "send(stream_id, message) -> paused: bool. str: text message; bytes-like: binary."},
    {"send_frame", (PyCFunction)(void (*)(void))conn_send_frame, METH_VARARGS | METH_KEYWORDS,
     "send_frame(stream_id, opcode, payload, *, fin=True) -> paused: bool (fragments, ping, "
     "pong)."},
    {"close", (PyCFunction)(void (*)(void))conn_close, METH_VARARGS | METH_KEYWORDS,
     "close(stream_id, code=None, reason=''): our close frame; END_STREAM follows the peer's."},
    {"reset", (PyCFunction)(void (*)(void))conn_reset, METH_VARARGS | METH_KEYWORDS,
     "reset(stream_id, error_code=8) -> bool: RST_STREAM (False if the stream is gone)."},
    {"consume", (PyCFunction)(void (*)(void))conn_consume, METH_FASTCALL,
     "consume(stream_id, credit): the application took a message or chunk with this credit."},
    {"shutdown_notice", conn_shutdown_notice, METH_NOARGS,
     "shutdown_notice(): first GOAWAY of a graceful shutdown."},
    {"goaway", conn_goaway, METH_VARARGS, "goaway(error_code=0): the final GOAWAY."},
    {"buffered", conn_buffered, METH_O, "buffered(stream_id) -> bytes queued for the stream."},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef conn_getset[] = {
    {"want_io", conn_get_want_io, NULL, "False once the connection can be closed", NULL},
    {"open_streams", conn_get_open_streams, NULL, "streams currently open", NULL},
    {"has_events", conn_get_has_events, NULL,
     "True when events() has events to give (raised by data_to_send() or data_to_write())",
     NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyType_Slot conn_slots[] = {
    {Py_tp_new, conn_new},
    {Py_tp_init, conn_init},
    {Py_tp_dealloc, conn_dealloc},
    {Py_tp_traverse, conn_traverse},
    {Py_tp_clear, conn_clear},
    {Py_tp_methods, conn_methods},
    {Py_tp_getset, conn_getset},
    {Py_tp_doc,
     "H2Connection(*, client=False, enable_connect_protocol=True, max_concurrent_streams=100, "
     "initial_window_size=262144, connection_window_size=8388608, max_header_list_size=16384, "
     "max_frame_size=16384, write_high_water=65536, max_message_size=1048576)\n--\n\n"
     "The server side of one HTTP/2 connection carrying WebSockets (RFC 8441), sans-IO."},
    {0, NULL}};

static PyType_Spec conn_spec = {"h2ws._core.H2Connection", sizeof(ConnObject), 0,
                                Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
                                conn_slots};

/* ---------------------------------------------------------------------- */
/* WakeBatch and Waiter: what WebSocket.recv() awaits (h2ws/websocket.py). */

/*
 * A Waiter speaks the future protocol asyncio.Task accepts from any awaited
 * object (_asyncio_future_blocking, get_loop, add_done_callback, result,
 * cancel), so recv() needs no asyncio.Future per message. Resolved while its
 * WakeBatch is active (a carrier dispatching the events of one read), it is
 * queued on the batch, whose run() then resumes every queued task directly:
 * no call_soon handle per message, and what the handlers send goes out in
 * the write that ends the read. Otherwise it resumes its task with
 * loop.call_soon, as a Future would.
 */

enum { W_PENDING = 0, W_DONE = 1, W_CANCELLED = 2, W_FAILED = 3 };

typedef struct {
  PyObject_HEAD
  PyObject *loop;
  PyObject *waiters;         /* list of resolved Waiters to resume */
  PyObject *done;            /* a completed asyncio.Future: see batch_run */
  PyTypeObject *waiter_type; /* strong */
  char active;
} WakeBatchObject;

typedef struct {
  PyObject_HEAD
  WakeBatchObject *batch; /* strong; NULL for Waiter.completed() */
  PyObject *callback;     /* the waiting task's wake-up, or NULL */
  PyObject *context;      /* its context, or NULL */
  PyObject *value;        /* W_DONE: the result (NULL once taken); W_FAILED: the exception */
  PyObject *owner;        /* gets an untaken result back on cancel(), or NULL */
  char blocking;          /* _asyncio_future_blocking */
  char state;
  char iterating;         /* made for async iteration (see WebSocket.__anext__) */
} WaiterObject;

/* Raises asyncio.<name>(msg) (msg NULL: no arguments). */
static void raise_asyncio(const char *name, const char *msg) {
  PyObject *mod = PyImport_ImportModule("asyncio");
  if (!mod)
    return;
  PyObject *exc = PyObject_GetAttrString(mod, name);
  Py_DECREF(mod);
  if (!exc)
    return;
  if (msg)
    PyErr_SetString(exc, msg);
  else
    PyErr_SetNone(exc);
  Py_DECREF(exc);
}

/* Hands the waiting task's wake-up to loop.call_soon(callback, self,
 * context=...). */
static int waiter_schedule(WaiterObject *w) {
  PyObject *cb = w->callback, *ctx = w->context;
  w->callback = w->context = NULL;
  if (!cb) {
    Py_XDECREF(ctx);
    return 0;
  }
  if (!w->batch) { /* a completed waiter has no loop: never awaited by a task */
    Py_DECREF(cb);
    Py_XDECREF(ctx);
    return 0;
  }
  PyObject *name = PyUnicode_FromString("call_soon");
  PyObject *kw = ctx ? Py_BuildValue("(s)", "context") : NULL;
  PyObject *res = NULL;
  if (name && (kw || !ctx)) {
    PyObject *args[4] = {w->batch->loop, cb, (PyObject *)w, ctx};
    res = PyObject_VectorcallMethod(name, args, 3, kw);
  }
  Py_XDECREF(name);
  Py_XDECREF(kw);
  Py_DECREF(cb);
  Py_XDECREF(ctx);
  if (!res)
    return -1;
  Py_DECREF(res);
  return 0;
}

static PyObject *waiter_await(PyObject *self) { return Py_NewRef(self); }

/* Raises what a finished waiter ends with: its exception, or CancelledError. */
static void waiter_raise(WaiterObject *w) {
  if (w->state == W_FAILED && w->value)
    PyErr_SetObject((PyObject *)Py_TYPE(w->value), w->value);
  else
    raise_asyncio("CancelledError", NULL);
}

/* The awaitable's send (what `await` uses): yields itself while pending,
 * then returns the result (taken: a second await returns None), or raises
 * the exception, or CancelledError once cancelled. No StopIteration is
 * made for the result. */
static PySendResult waiter_send(PyObject *self, PyObject *arg, PyObject **result) {
  (void)arg;
  WaiterObject *w = (WaiterObject *)self;
  if (w->state == W_PENDING) {
    w->blocking = 1;
    *result = Py_NewRef(self);
    return PYGEN_NEXT;
  }
  if (w->state == W_DONE) {
    PyObject *v = w->value;
    w->value = NULL;
    *result = v ? v : Py_NewRef(Py_None);
    return PYGEN_RETURN;
  }
  waiter_raise(w);
  *result = NULL;
  return PYGEN_ERROR;
}

/* The awaitable's iterator (itself), for callers that do not use send. */
static PyObject *waiter_iternext(PyObject *self) {
  PyObject *result;
  PySendResult r = waiter_send(self, Py_None, &result);
  if (r == PYGEN_NEXT)
    return result;
  if (r == PYGEN_RETURN) {
    if (result != Py_None) {
      PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, result);
      if (stop) {
        PyErr_SetObject(PyExc_StopIteration, stop);
        Py_DECREF(stop);
      }
    }
    Py_DECREF(result);
  }
  return NULL;
}

static PyObject *waiter_get_loop(PyObject *self, PyObject *unused) {
  (void)unused;
  WaiterObject *w = (WaiterObject *)self;
  if (!w->batch) {
    PyErr_SetString(PyExc_RuntimeError, "a completed waiter has no loop");
    return NULL;
  }
  return Py_NewRef(w->batch->loop);
}

static PyObject *waiter_add_done_callback(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                          PyObject *kwnames) {
  WaiterObject *w = (WaiterObject *)self;
  if (nargs != 1) {
    PyErr_SetString(PyExc_TypeError, "add_done_callback(fn, *, context=None)");
    return NULL;
  }
  PyObject *ctx = NULL;
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  for (Py_ssize_t i = 0; i < nkw; i++) {
    if (!PyUnicode_Check(PyTuple_GET_ITEM(kwnames, i)) ||
        PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, i), "context") != 0) {
      PyErr_SetString(PyExc_TypeError, "add_done_callback(fn, *, context=None)");
      return NULL;
    }
    ctx = args[nargs + i];
  }
  if (w->callback) {
    PyErr_SetString(PyExc_RuntimeError, "a recv() waiter has one waiting task");
    return NULL;
  }
  w->callback = Py_NewRef(args[0]);
  w->context = ctx && ctx != Py_None ? Py_NewRef(ctx) : NULL;
  if (w->state != W_PENDING && waiter_schedule(w) < 0)
    return NULL;
  Py_RETURN_NONE;
}

static PyObject *waiter_remove_done_callback(PyObject *self, PyObject *fn) {
  WaiterObject *w = (WaiterObject *)self;
  if (!w->callback)
    return PyLong_FromLong(0);
  int eq = PyObject_RichCompareBool(w->callback, fn, Py_EQ);
  if (eq < 0)
    return NULL;
  if (eq) {
    Py_CLEAR(w->callback);
    Py_CLEAR(w->context);
  }
  return PyLong_FromLong(eq);
}

static PyObject *waiter_done(PyObject *self, PyObject *unused) {
  (void)unused;
  return PyBool_FromLong(((WaiterObject *)self)->state != W_PENDING);
}

static PyObject *waiter_cancelled(PyObject *self, PyObject *unused) {
  (void)unused;
  return PyBool_FromLong(((WaiterObject *)self)->state == W_CANCELLED);
}

static PyObject *waiter_result(PyObject *self, PyObject *unused) {
  (void)unused;
  WaiterObject *w = (WaiterObject *)self;
  if (w->state == W_PENDING) {
    raise_asyncio("InvalidStateError", "result is not ready");
    return NULL;
  }
  if (w->state == W_DONE)
    return Py_NewRef(w->value ? w->value : Py_None);
  waiter_raise(w);
  return NULL;
}

/* Resolves a pending waiter: its task resumes at once after the batch's
 * dispatch if the batch is active, else with loop.call_soon. */
static int waiter_resolve(WaiterObject *w, char state, PyObject *value) {
  w->state = state;
  w->value = Py_NewRef(value);
  if (w->callback) {
    if (w->batch && w->batch->active)
      return PyList_Append(w->batch->waiters, (PyObject *)w);
    return waiter_schedule(w);
  }
  return 0;
}

static PyObject *waiter_set_result(PyObject *self, PyObject *value) {
  WaiterObject *w = (WaiterObject *)self;
  if (w->state != W_PENDING)
    Py_RETURN_FALSE;
  if (waiter_resolve(w, W_DONE, value) < 0)
    return NULL;
  Py_RETURN_TRUE;
}

static PyObject *waiter_set_exception(PyObject *self, PyObject *exc) {
  WaiterObject *w = (WaiterObject *)self;
  if (!PyExceptionInstance_Check(exc)) {
    PyErr_SetString(PyExc_TypeError, "set_exception() takes an exception instance");
    return NULL;
  }
  if (w->state != W_PENDING)
    Py_RETURN_FALSE;
  if (waiter_resolve(w, W_FAILED, exc) < 0)
    return NULL;
  Py_RETURN_TRUE;
}

/* Cancels a pending waiter. A waiter whose result its task has not taken
 * yet is cancelled too when it has an owner: the result goes back to the
 * owner (owner._unreceive(result)), so that no message is lost when a task
 * is cancelled between the message's arrival and its wake-up. */
static PyObject *waiter_cancel(PyObject *self, PyObject *args, PyObject *kw) {
  (void)args;
  (void)kw;
  WaiterObject *w = (WaiterObject *)self;
  if (w->state == W_DONE && w->owner && w->value) {
    PyObject *v = w->value;
    w->value = NULL;
    w->state = W_CANCELLED;
    PyObject *r = PyObject_CallMethod(w->owner, "_unreceive", "O", v);
    Py_DECREF(v);
    if (!r)
      return NULL;
    Py_DECREF(r);
    Py_RETURN_TRUE; /* the task's wake-up is already on its way */
  }
  if (w->state != W_PENDING)
    Py_RETURN_FALSE;
  w->state = W_CANCELLED;
  if (waiter_schedule(w) < 0)
    return NULL;
  Py_RETURN_TRUE;
}

static PyObject *waiter_completed(PyObject *cls, PyObject *value) {
  WaiterObject *w = PyObject_GC_New(WaiterObject, (PyTypeObject *)cls);
  if (!w)
    return NULL;
  w->batch = NULL;
  w->callback = w->context = w->owner = NULL;
  w->value = Py_NewRef(value);
  w->blocking = 0;
  w->state = W_DONE;
  w->iterating = 0;
  PyObject_GC_Track((PyObject *)w);
  return (PyObject *)w;
}

static int waiter_traverse(PyObject *self, visitproc visit, void *arg) {
  WaiterObject *w = (WaiterObject *)self;
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(w->batch);
  Py_VISIT(w->callback);
  Py_VISIT(w->context);
  Py_VISIT(w->value);
  Py_VISIT(w->owner);
  return 0;
}

static int waiter_clear(PyObject *self) {
  WaiterObject *w = (WaiterObject *)self;
  Py_CLEAR(w->batch);
  Py_CLEAR(w->callback);
  Py_CLEAR(w->context);
  Py_CLEAR(w->value);
  Py_CLEAR(w->owner);
  return 0;
}

static void waiter_dealloc(PyObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  waiter_clear(self);
  PyObject_GC_Del(self);
  Py_DECREF(tp);
}

static PyMethodDef waiter_methods[] = {
    {"get_loop", waiter_get_loop, METH_NOARGS, NULL},
    {"add_done_callback", (PyCFunction)(void (*)(void))waiter_add_done_callback,
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {"remove_done_callback", waiter_remove_done_callback, METH_O, NULL},
    {"done", waiter_done, METH_NOARGS, NULL},
    {"cancelled", waiter_cancelled, METH_NOARGS, NULL},
    {"result", waiter_result, METH_NOARGS, NULL},
    {"set_result", waiter_set_result, METH_O,
     "set_result(value) -> bool: the waiting task resumes with `value` (at once after the "
     "batch's dispatch if it is active, else with loop.call_soon); False if it was no longer "
     "pending (cancelled, or already resolved)."},
    {"set_exception", waiter_set_exception, METH_O,
     "set_exception(exc) -> bool: the waiting task resumes and `exc` is raised in it; False "
     "if it was no longer pending."},
    {"cancel", (PyCFunction)(void (*)(void))waiter_cancel, METH_VARARGS | METH_KEYWORDS, NULL},
    {"completed", waiter_completed, METH_O | METH_CLASS,
     "completed(value) -> Waiter: an awaitable that returns `value` at once."},
    {NULL, NULL, 0, NULL}};

static PyMemberDef waiter_members[] = {
    {"_asyncio_future_blocking", T_BOOL, offsetof(WaiterObject, blocking), 0, NULL},
    {"iterating", T_BOOL, offsetof(WaiterObject, iterating), READONLY,
     "True if made for async iteration: see WakeBatch.waiter()"},
    {NULL, 0, 0, 0, NULL}};

static PyType_Slot waiter_slots[] = {
    {Py_am_await, waiter_await},
    {Py_am_send, waiter_send},
    {Py_tp_iter, waiter_await},
    {Py_tp_iternext, waiter_iternext},
    {Py_tp_dealloc, waiter_dealloc},
    {Py_tp_traverse, waiter_traverse},
    {Py_tp_clear, waiter_clear},
    {Py_tp_methods, waiter_methods},
    {Py_tp_members, waiter_members},
    {Py_tp_doc, "What WebSocket.recv() awaits: made by WakeBatch.waiter()."},
    {0, NULL}};

static PyType_Spec waiter_spec = {"h2ws._core.Waiter", sizeof(WaiterObject), 0,
                                  Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
                                      Py_TPFLAGS_IMMUTABLETYPE |
                                      Py_TPFLAGS_DISALLOW_INSTANTIATION,
                                  waiter_slots};

static PyObject *batch_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"loop", NULL};
  PyObject *loop;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O:WakeBatch", kwlist, &loop))
    return NULL;
  PyObject *module = PyType_GetModule(type);
  if (!module)
    return NULL;
  PyObject *wtype = PyObject_GetAttrString(module, "Waiter");
  if (!wtype)
    return NULL;
  if (!PyType_Check(wtype)) {
    Py_DECREF(wtype);
    PyErr_SetString(PyExc_SystemError, "h2ws._core.Waiter is not a type");
    return NULL;
  }
  WakeBatchObject *b = (WakeBatchObject *)type->tp_alloc(type, 0);
  if (!b) {
    Py_DECREF(wtype);
    return NULL;
  }
  b->waiter_type = (PyTypeObject *)wtype;
  b->loop = Py_NewRef(loop);
  b->waiters = PyList_New(0);
  b->done = b->waiters ? PyObject_CallMethod(loop, "create_future", NULL) : NULL;
  PyObject *r = b->done ? PyObject_CallMethod(b->done, "set_result", "O", Py_None) : NULL;
  if (!r) {
    Py_DECREF(b);
    return NULL;
  }
  Py_DECREF(r);
  return (PyObject *)b;
}

static PyObject *batch_waiter(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs > 2) {
    PyErr_SetString(PyExc_TypeError, "waiter(owner=None, iterating=False, /)");
    return NULL;
  }
  PyObject *owner = nargs > 0 ? args[0] : Py_None;
  int iterating = nargs > 1 ? PyObject_IsTrue(args[1]) : 0;
  if (iterating < 0)
    return NULL;
  WakeBatchObject *b = (WakeBatchObject *)self;
  WaiterObject *w = PyObject_GC_New(WaiterObject, b->waiter_type);
  if (!w)
    return NULL;
  w->batch = (WakeBatchObject *)Py_NewRef(self);
  w->callback = w->context = w->value = NULL;
  w->owner = owner == Py_None ? NULL : Py_NewRef(owner);
  w->blocking = 0;
  w->state = W_PENDING;
  w->iterating = (char)iterating;
  PyObject_GC_Track((PyObject *)w);
  return (PyObject *)w;
}

/*
 * Resumes the tasks of the waiters resolved during the dispatch, in order.
 * Each wake-up callback gets the batch's completed Future rather than the
 * Waiter: asyncio.Task's wake-up only reads the result of what it is given,
 * and reads an exact Future's in C (a Waiter's would cost a method call).
 * Call it only from an event-loop callback, never from inside a task.
 */
static PyObject *batch_run(PyObject *self, PyObject *unused) {
  (void)unused;
  WakeBatchObject *b = (WakeBatchObject *)self;
  if (PyList_GET_SIZE(b->waiters) == 0)
    Py_RETURN_NONE;
  PyObject *fresh = PyList_New(0);
  if (!fresh)
    return NULL;
  PyObject *list = b->waiters;
  b->waiters = fresh;
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
    WaiterObject *w = (WaiterObject *)PyList_GET_ITEM(list, i);
    PyObject *cb = w->callback, *ctx = w->context;
    w->callback = w->context = NULL;
    if (!cb) {
      Py_XDECREF(ctx);
      continue;
    }
    PyObject *r = NULL;
    if (!ctx) {
      r = PyObject_CallOneArg(cb, b->done);
    } else if (PyContext_Enter(ctx) == 0) {
      r = PyObject_CallOneArg(cb, b->done);
      if (PyContext_Exit(ctx) < 0)
        Py_CLEAR(r);
    }
    if (r) {
      Py_DECREF(r);
      Py_DECREF(cb);
      Py_XDECREF(ctx);
      continue;
    }
    w->callback = cb;
    w->context = ctx;
    if (!PyErr_ExceptionMatches(PyExc_RuntimeError)) {
      /* KeyboardInterrupt or SystemExit out of the task's step: it goes on
       * up to the loop, as from a call_soon handle; the waiters not
       * resumed yet stay queued for the next run(). */
      Py_CLEAR(w->callback);
      Py_CLEAR(w->context);
      for (Py_ssize_t j = i + 1; j < PyList_GET_SIZE(list); j++)
        if (PyList_Append(b->waiters, PyList_GET_ITEM(list, j)) < 0)
          break;
      Py_DECREF(list);
      return NULL;
    }
    /* The task could not be resumed here (run() called from inside a task:
     * "Cannot enter into task"; the task is untouched): the loop does it. */
    PyErr_Clear();
    if (waiter_schedule(w) < 0)
      PyErr_WriteUnraisable((PyObject *)w);
  }
  Py_DECREF(list);
  Py_RETURN_NONE;
}

static int batch_traverse(PyObject *self, visitproc visit, void *arg) {
  WakeBatchObject *b = (WakeBatchObject *)self;
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(b->loop);
  Py_VISIT(b->waiters);
  Py_VISIT(b->done);
  Py_VISIT(b->waiter_type);
  return 0;
}

static int batch_clear(PyObject *self) {
  WakeBatchObject *b = (WakeBatchObject *)self;
  Py_CLEAR(b->loop);
  Py_CLEAR(b->waiters);
  Py_CLEAR(b->done);
  Py_CLEAR(b->waiter_type);
  return 0;
}

static void batch_dealloc(PyObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  batch_clear(self);
  tp->tp_free(self);
  Py_DECREF(tp);
}

void h2ws_py_batch_set_active(PyObject *batch, int active) {
  if (batch && Py_TYPE(batch)->tp_dealloc == batch_dealloc)
    ((WakeBatchObject *)batch)->active = (char)(active != 0);
}

/* The raised exception as one object, taken from and put back into the
 * thread state (PyErr_Fetch/Restore are deprecated from Python 3.12). */
static PyObject *err_take(void) {
#if PY_VERSION_HEX >= 0x030C0000
  return PyErr_GetRaisedException();
#else
  PyObject *type = NULL, *value = NULL, *tb = NULL;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  if (tb && value)
    PyException_SetTraceback(value, tb);
  Py_XDECREF(type);
  Py_XDECREF(tb);
  return value;
#endif
}

static void err_put(PyObject *exc) { /* steals `exc` */
#if PY_VERSION_HEX >= 0x030C0000
  PyErr_SetRaisedException(exc);
#else
  if (!exc)
    return;
  PyObject *tb = PyException_GetTraceback(exc);
  Py_INCREF(Py_TYPE(exc));
  PyErr_Restore((PyObject *)Py_TYPE(exc), exc, tb);
#endif
}

int h2ws_py_batch_end(PyObject *batch) {
  int failed = PyErr_Occurred() != NULL;
  if (!batch || Py_TYPE(batch)->tp_dealloc != batch_dealloc)
    return failed ? -1 : 0;
  WakeBatchObject *b = (WakeBatchObject *)batch;
  b->active = 0;
  if (!b->waiters || PyList_GET_SIZE(b->waiters) == 0)
    return failed ? -1 : 0;
  /* As a `finally:` would: the waiters run even when the dispatch raised. */
  PyObject *raised = failed ? err_take() : NULL;
  PyObject *r = batch_run(batch, NULL);
  if (!r) { /* run()'s exception replaces the dispatch's */
    Py_XDECREF(raised);
    return -1;
  }
  Py_DECREF(r);
  if (failed) {
    err_put(raised);
    return -1;
  }
  return 0;
}

static PyMethodDef batch_methods[] = {
    {"waiter", (PyCFunction)(void (*)(void))batch_waiter, METH_FASTCALL,
     "waiter(owner=None, iterating=False, /) -> Waiter: what one recv() awaits; `owner` gets "
     "a result back (owner._unreceive(result)) if the waiter is cancelled before its task "
     "took it."},
    {"run", batch_run, METH_NOARGS,
     "run(): resumes the tasks of the waiters resolved while the batch was active."},
    {NULL, NULL, 0, NULL}};

static PyMemberDef batch_members[] = {
    {"active", T_BOOL, offsetof(WakeBatchObject, active), 0,
     "True while the carrier dispatches a read: resolved waiters are queued for run()."},
    {"waiters", T_OBJECT, offsetof(WakeBatchObject, waiters), READONLY,
     "the resolved waiters run() will resume"},
    {"loop", T_OBJECT, offsetof(WakeBatchObject, loop), READONLY, NULL},
    {NULL, 0, 0, 0, NULL}};

static PyType_Slot batch_slots[] = {
    {Py_tp_new, batch_new},
    {Py_tp_dealloc, batch_dealloc},
    {Py_tp_traverse, batch_traverse},
    {Py_tp_clear, batch_clear},
    {Py_tp_methods, batch_methods},
    {Py_tp_members, batch_members},
    {Py_tp_doc,
     "WakeBatch(loop)\n--\n\n"
     "The recv() waiters resolved while a carrier dispatches the events of one read; "
     "run() resumes their tasks once the dispatch is over."},
    {0, NULL}};

static PyType_Spec batch_spec = {"h2ws._core.WakeBatch", sizeof(WakeBatchObject), 0,
                                 Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
                                     Py_TPFLAGS_IMMUTABLETYPE,
                                 batch_slots};

static int add_wait_types(PyObject *m) {
  PyTypeObject *wt = (PyTypeObject *)PyType_FromModuleAndSpec(m, &waiter_spec, NULL);
  if (!wt)
    return -1;
  int rv = PyModule_AddType(m, wt);
  Py_DECREF(wt);
  if (rv < 0)
    return -1;
  PyTypeObject *bt = (PyTypeObject *)PyType_FromModuleAndSpec(m, &batch_spec, NULL);
  if (!bt)
    return -1;
  rv = PyModule_AddType(m, bt);
  Py_DECREF(bt);
  return rv;
}

int h2ws_py_connection_add(PyObject *m, module_state *st) {
  st->connection_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &conn_spec, NULL);
  if (!st->connection_type)
    return -1;
  if (PyModule_AddType(m, st->connection_type) < 0)
    return -1;
  st->piece_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &piece_spec, NULL);
  if (!st->piece_type)
    return -1;
  if (add_wait_types(m) < 0)
    return -1;
  struct {
    const char *name;
    long value;
  } consts[] = {{"SEV_REQUEST", H2WS_SEV_REQUEST},
                {"SEV_WEBSOCKET", H2WS_SEV_WEBSOCKET},
                {"SEV_BODY", H2WS_SEV_BODY},
                {"SEV_BODY_END", H2WS_SEV_BODY_END},
                {"SEV_TEXT", H2WS_SEV_TEXT},
                {"SEV_BINARY", H2WS_SEV_BINARY},
                {"SEV_PONG", H2WS_SEV_PONG},
                {"SEV_CLOSE", H2WS_SEV_CLOSE},
                {"SEV_WS_FAILED", H2WS_SEV_WS_FAILED},
                {"SEV_STREAM_END", H2WS_SEV_STREAM_END},
                {"SEV_RESUME_WRITING", H2WS_SEV_RESUME_WRITING},
                {"SEV_GOAWAY", H2WS_SEV_GOAWAY},
                {"SEV_PEER_ENDED", H2WS_SEV_PEER_ENDED},
                {"SEV_SETTINGS", H2WS_SEV_SETTINGS},
                {"SEV_RESPONSE", H2WS_SEV_RESPONSE}};
  for (size_t i = 0; i < sizeof consts / sizeof consts[0]; i++)
    if (PyModule_AddIntConstant(m, consts[i].name, consts[i].value) < 0)
      return -1;
  return 0;
}
