/*
 * connection.c - h2ws._core.H2Connection: the HTTP/2 session of the core
 * (csrc/core/session.h), server role, as a sans-IO Python object.
 *
 * Events come back as tuples, collected while the core runs and returned
 * all at once: receive_data() returns them; events raised while sending
 * (a stream closing after our END_STREAM, a queue draining) wait for
 * events() or the next receive_data().
 */
#include "binding.h"

#include "../core/error.h"
#include "../core/session.h"

typedef struct {
  PyObject_HEAD
  h2ws_session *session;
  h2ws_buf out;
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
    return Py_BuildValue("(iiNn)", ev->type, ev->stream_id, make_text(ev->data, ev->len),
                         (Py_ssize_t)ev->credit);
  case H2WS_SEV_BINARY:
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

static PyObject *conn_data_to_send(PyObject *self_, PyObject *unused) {
  (void)unused;
  ConnObject *self = (ConnObject *)self_;
  CHECK_SESSION(self);
  int rv = h2ws_session_send(self->session, &self->out);
  if (rv < 0)
    return fail(self, rv, NULL);
  PyObject *b = PyBytes_FromStringAndSize((const char *)h2ws_buf_begin(&self->out),
                                          (Py_ssize_t)h2ws_buf_pending(&self->out));
  if (b)
    h2ws_buf_reset(&self->out, 256 * 1024);
  return b;
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

static PyObject *conn_send(PyObject *self_, PyObject *args) {
  ConnObject *self = (ConnObject *)self_;
  CHECK_SESSION(self);
  int sid;
  PyObject *msg;
  if (!PyArg_ParseTuple(args, "iO:send", &sid, &msg))
    return NULL;
  int rv;
  if (PyUnicode_Check(msg)) {
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
  unsigned code = 0;
  if (code_obj != Py_None) {
    long c = PyLong_AsLong(code_obj);
    if (c == -1 && PyErr_Occurred())
      return NULL;
    if (c <= 0 || c > 0xFFFF) {
      PyErr_SetString(PyExc_ValueError, "invalid close code");
      return NULL;
    }
    code = (unsigned)c;
  }
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

static PyObject *conn_consume(PyObject *self_, PyObject *args) {
  ConnObject *self = (ConnObject *)self_;
  CHECK_SESSION(self);
  int sid;
  Py_ssize_t credit;
  if (!PyArg_ParseTuple(args, "in:consume", &sid, &credit))
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
    {"send", conn_send, METH_VARARGS,
     "send(stream_id, message) -> paused: bool. str: text message; bytes-like: binary."},
    {"send_frame", (PyCFunction)(void (*)(void))conn_send_frame, METH_VARARGS | METH_KEYWORDS,
     "send_frame(stream_id, opcode, payload, *, fin=True) -> paused: bool (fragments, ping, "
     "pong)."},
    {"close", (PyCFunction)(void (*)(void))conn_close, METH_VARARGS | METH_KEYWORDS,
     "close(stream_id, code=None, reason=''): our close frame; END_STREAM follows the peer's."},
    {"reset", (PyCFunction)(void (*)(void))conn_reset, METH_VARARGS | METH_KEYWORDS,
     "reset(stream_id, error_code=8) -> bool: RST_STREAM (False if the stream is gone)."},
    {"consume", conn_consume, METH_VARARGS,
     "consume(stream_id, credit): the application took a message or chunk with this credit."},
    {"shutdown_notice", conn_shutdown_notice, METH_NOARGS,
     "shutdown_notice(): first GOAWAY of a graceful shutdown."},
    {"goaway", conn_goaway, METH_VARARGS, "goaway(error_code=0): the final GOAWAY."},
    {"buffered", conn_buffered, METH_O, "buffered(stream_id) -> bytes queued for the stream."},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef conn_getset[] = {
    {"want_io", conn_get_want_io, NULL, "False once the connection can be closed", NULL},
    {"open_streams", conn_get_open_streams, NULL, "streams currently open", NULL},
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

int h2ws_py_connection_add(PyObject *m, module_state *st) {
  st->connection_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &conn_spec, NULL);
  if (!st->connection_type)
    return -1;
  if (PyModule_AddType(m, st->connection_type) < 0)
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
