/*
 * carrier.c - h2ws._core.H1Carrier: the per-message path of a WebSocket on
 * a raw HTTP/1.1 connection, the base of h2ws.h1ws.H1WebSocketCarrier (and
 * so of the server's and the client's HTTP/1.1 protocols).
 *
 * It holds the carrier's hot state as attributes (_codec, _ws, _view,
 * _transport, _loop, _wake_batch, _flush_handle, flags and _write_limit) that
 * the Python side reads and sets as before, and does in C what runs for every
 * message:
 *
 *   get_buffer()       the read buffer (asyncio.BufferedProtocol);
 *   buffer_updated(n)  once the codec runs: parses the read and dispatches
 *                      each event as it is parsed (a message straight to
 *                      its protocol's message_received, the rest to the
 *                      Python _ws_control), resumes the recv() waiters of
 *                      the WakeBatch, then writes what was sent in one
 *                      transport.write; before the upgrade (or while
 *                      lingering) it calls the Python _http_received(n);
 *   _ws_send()         WebSocketTransport.send()'s carrier call;
 *   _queued(), _flush()  output once per loop tick, or at once over the
 *                      write limit.
 *
 * What is rare (control frames, closing, pausing) stays in Python.
 */
#include "binding.h"

#include <structmember.h>

typedef struct {
  PyObject *http_received, *reading_paused, *protocol, *message_received, *on_message,
      *ws_control, *cancel, *close_transport, *write, *get_write_buffer_size, *call_soon,
      *flush;
} carrier_names;

typedef struct {
  PyObject_HEAD
  PyObject *codec;        /* _codec: a WebSocketCodec once upgraded, else None */
  PyObject *ws;           /* _ws: the WebSocketTransport */
  PyObject *view;         /* _view: the read buffer, a writable buffer */
  PyObject *transport;    /* _transport (a property: see set_transport) */
  PyObject *loop;         /* _loop */
  PyObject *flush_handle; /* _flush_handle: the scheduled _flush, or None */
  PyObject *batch;        /* _wake_batch */
  PyObject *write;        /* transport.write, looked up once per transport */
  PyObject *buffered;     /* transport.get_write_buffer_size, idem */
  const carrier_names *names; /* interned names, in the module state */
  Py_ssize_t write_limit;     /* _write_limit */
  char lost;                  /* _lost: connection_lost came */
  char write_paused;          /* _write_paused: the transport paused writing */
  char dispatching;           /* _dispatching: buffer_updated dispatches events */
  char lingering;             /* _lingering: FIN sent, only TCP is left */
  char close_after_flush;     /* _close_after_flush */
  char closes_first;          /* _closes_first: the server role */
} CarrierObject;

#define IS_NONE(o) (!(o) || (o) == Py_None)

/* The names live in the module state (freed with the module, which
 * outlives every instance: their type holds it). */
static carrier_names *names_of(module_state *st) { return (carrier_names *)st->carrier_names; }

/* ---------------------------------------------------------------------- */

static PyObject *carrier_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
  (void)args;
  (void)kw;
  module_state *st = NULL;
  PyObject *m = PyType_GetModuleByDef(type, &h2ws_py_module_def);
  if (!m)
    return NULL;
  st = (module_state *)PyModule_GetState(m);
  CarrierObject *self = (CarrierObject *)type->tp_alloc(type, 0);
  if (!self)
    return NULL;
  self->names = names_of(st);
  return (PyObject *)self;
}

static int carrier_traverse(PyObject *self_, visitproc visit, void *arg) {
  CarrierObject *self = (CarrierObject *)self_;
  Py_VISIT(Py_TYPE(self_));
  Py_VISIT(self->codec);
  Py_VISIT(self->ws);
  Py_VISIT(self->view);
  Py_VISIT(self->transport);
  Py_VISIT(self->loop);
  Py_VISIT(self->flush_handle);
  Py_VISIT(self->batch);
  Py_VISIT(self->write);
  Py_VISIT(self->buffered);
  return 0;
}

static int carrier_clear(PyObject *self_) {
  CarrierObject *self = (CarrierObject *)self_;
  Py_CLEAR(self->codec);
  Py_CLEAR(self->ws);
  Py_CLEAR(self->view);
  Py_CLEAR(self->transport);
  Py_CLEAR(self->loop);
  Py_CLEAR(self->flush_handle);
  Py_CLEAR(self->batch);
  Py_CLEAR(self->write);
  Py_CLEAR(self->buffered);
  return 0;
}

static void carrier_dealloc(PyObject *self_) {
  PyTypeObject *tp = Py_TYPE(self_);
  PyObject_GC_UnTrack(self_);
  carrier_clear(self_);
  tp->tp_free(self_);
  Py_DECREF(tp);
}

/* ---------------------------------------------------------------------- */

/* A new reference to transport.<name>, cached in *slot. */
static PyObject *transport_method(CarrierObject *self, PyObject **slot, PyObject *name) {
  if (!*slot) {
    *slot = PyObject_GetAttr(self->transport, name);
    if (!*slot)
      return NULL;
  }
  return Py_NewRef(*slot);
}

/* _flush(): cancels a scheduled flush, writes what the codec has, and closes
 * the connection if that was the last answer. Returns 0 or -1. */
static int flush(CarrierObject *self) {
  const carrier_names *n = self->names;
  if (!IS_NONE(self->flush_handle)) {
    PyObject *handle = self->flush_handle;
    self->flush_handle = NULL; /* reads as None */
    PyObject *r = PyObject_CallMethodNoArgs(handle, n->cancel); /* when called before its turn */
    Py_DECREF(handle);
    if (!r)
      return -1;
    Py_DECREF(r);
  }
  if (self->lost || self->lingering || IS_NONE(self->codec) || IS_NONE(self->transport))
    return 0;
  PyObject *data = h2ws_py_codec_take(self->codec);
  if (!data)
    return -1;
  if (PyBytes_GET_SIZE(data)) {
    PyObject *write = transport_method(self, &self->write, n->write);
    PyObject *r = write ? PyObject_CallOneArg(write, data) : NULL;
    Py_XDECREF(write);
    if (!r) {
      Py_DECREF(data);
      return -1;
    }
    Py_DECREF(r);
  }
  Py_DECREF(data);
  if (self->close_after_flush) {
    PyObject *r = PyObject_CallMethodNoArgs((PyObject *)self, n->close_transport);
    if (!r)
      return -1;
    Py_DECREF(r);
  }
  return 0;
}

/* _queued(pending): output goes out once per loop tick (at the end of
 * buffer_updated while a read is dispatched), or at once when the `pending`
 * bytes in the codec would take the socket's buffer over _write_limit: then
 * pause_writing comes now and a sender waits, even one that never yields to
 * the loop. Returns 0 or -1. */
static int queued(CarrierObject *self, Py_ssize_t pending) {
  const carrier_names *n = self->names;
  if (!IS_NONE(self->transport)) {
    PyObject *size_fn = transport_method(self, &self->buffered, n->get_write_buffer_size);
    PyObject *size = size_fn ? PyObject_CallNoArgs(size_fn) : NULL;
    Py_XDECREF(size_fn);
    if (!size)
      return -1;
    Py_ssize_t buffered = PyLong_AsSsize_t(size);
    Py_DECREF(size);
    if (buffered == -1 && PyErr_Occurred())
      return -1;
    if (pending > self->write_limit - buffered)
      return flush(self);
  }
  if (IS_NONE(self->flush_handle) && !self->dispatching && !self->lost) {
    if (IS_NONE(self->loop)) {
      PyErr_SetString(PyExc_RuntimeError, "the carrier has no event loop");
      return -1;
    }
    PyObject *cb = PyObject_GetAttr((PyObject *)self, n->flush);
    PyObject *handle = cb ? PyObject_CallMethodOneArg(self->loop, n->call_soon, cb) : NULL;
    Py_XDECREF(cb);
    if (!handle)
      return -1;
    Py_XSETREF(self->flush_handle, handle);
  }
  return 0;
}

/* Calls obj.<name>(arg) and drops the result. Returns 0 or -1. */
static int call_method1(PyObject *obj, PyObject *name, PyObject *arg) {
  PyObject *r = PyObject_CallMethodOneArg(obj, name, arg);
  if (!r)
    return -1;
  Py_DECREF(r);
  return 0;
}

/* One message for the WebSocketTransport `ws`: held while its reading is
 * paused, else straight to its protocol's message_received (over TCP a
 * message carries no flow-control credit). Returns 0 or -1. */
static int deliver(CarrierObject *self, PyObject *ws, PyObject *msg) {
  const carrier_names *n = self->names;
  PyObject *paused = PyObject_GetAttr(ws, n->reading_paused);
  if (!paused)
    return -1;
  int held = PyObject_IsTrue(paused);
  Py_DECREF(paused);
  if (held < 0)
    return -1;
  if (held) {
    PyObject *zero = PyLong_FromLong(0);
    if (!zero)
      return -1;
    PyObject *args[3] = {ws, msg, zero};
    PyObject *r = PyObject_VectorcallMethod(n->on_message, args,
                                            3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(zero);
    if (!r)
      return -1;
    Py_DECREF(r);
    return 0;
  }
  PyObject *protocol = PyObject_GetAttr(ws, n->protocol);
  if (!protocol)
    return -1;
  int rv = call_method1(protocol, n->message_received, msg);
  Py_DECREF(protocol);
  return rv;
}

/* Parses data[0..len) with the codec of `codec` and dispatches each event.
 * The codec, `ws` and the data are held by the caller. Returns 0 or -1. */
static int dispatch(CarrierObject *self, PyObject *codec, PyObject *ws, const uint8_t *data,
                    size_t len) {
  h2ws_ws *state = h2ws_py_codec_ws(codec);
  for (;;) {
    h2ws_ws_event ev;
    size_t used;
    int rv = h2ws_ws_recv(state, data, len, &used, &ev);
    if (rv < 0) {
      h2ws_py_raise(h2ws_py_state_of(codec), rv, NULL);
      return -1;
    }
    data += used;
    len -= used;
    if (ev.type == H2WS_WS_EV_NONE)
      return 0;
    if (ev.type == H2WS_WS_EV_TEXT || ev.type == H2WS_WS_EV_BINARY) {
      PyObject *msg = h2ws_py_codec_message(&ev);
      h2ws_ws_event_done(state);
      if (!msg)
        return -1;
      rv = deliver(self, ws, msg);
      Py_DECREF(msg);
    } else {
      PyObject *t = h2ws_py_codec_event(&ev);
      h2ws_ws_event_done(state);
      if (!t)
        return -1;
      PyObject *args[4] = {(PyObject *)self, codec, ws, t};
      PyObject *r = PyObject_VectorcallMethod(self->names->ws_control, args,
                                              4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
      Py_DECREF(t);
      rv = r ? 0 : -1;
      Py_XDECREF(r);
    }
    if (rv < 0)
      return -1;
  }
}

/* ---------------------------------------------------------------------- */

static PyObject *carrier_get_buffer(PyObject *self_, PyObject *sizehint) {
  (void)sizehint;
  CarrierObject *self = (CarrierObject *)self_;
  if (IS_NONE(self->view)) {
    PyErr_SetString(PyExc_RuntimeError, "the carrier has no read buffer");
    return NULL;
  }
  return Py_NewRef(self->view);
}

static PyObject *carrier_buffer_updated(PyObject *self_, PyObject *arg) {
  CarrierObject *self = (CarrierObject *)self_;
  Py_ssize_t nbytes = PyLong_AsSsize_t(arg);
  if (nbytes == -1 && PyErr_Occurred())
    return NULL;
  if (IS_NONE(self->codec) || self->lingering)
    return PyObject_CallMethodOneArg(self_, self->names->http_received, arg);
  if (!h2ws_py_codec_ws(self->codec)) {
    PyErr_SetString(PyExc_TypeError, "_codec must be a WebSocketCodec");
    return NULL;
  }
  if (IS_NONE(self->ws)) {
    PyErr_SetString(PyExc_RuntimeError, "the upgraded connection has no WebSocket");
    return NULL;
  }
  if (IS_NONE(self->view)) {
    PyErr_SetString(PyExc_RuntimeError, "the carrier has no read buffer");
    return NULL;
  }
  Py_buffer view;
  if (PyObject_GetBuffer(self->view, &view, PyBUF_SIMPLE) < 0)
    return NULL;
  if (nbytes < 0 || nbytes > view.len) {
    PyBuffer_Release(&view);
    PyErr_SetString(PyExc_ValueError, "nbytes is beyond the read buffer");
    return NULL;
  }
  /* Held for the dispatch: a callback may replace the attributes. */
  PyObject *codec = Py_NewRef(self->codec);
  PyObject *ws = Py_NewRef(self->ws);
  PyObject *batch = Py_XNewRef(self->batch);
  self->dispatching = 1; /* sends need no flush scheduled: one comes below */
  h2ws_py_batch_set_active(batch, 1);
  int rv = dispatch(self, codec, ws, view.buf, (size_t)nbytes);
  /* Resumes the handlers whose recv() got a message: they run now and what
   * they send goes out in the write below. */
  rv = h2ws_py_batch_end(batch) < 0 ? -1 : rv;
  self->dispatching = 0;
  PyBuffer_Release(&view);
  Py_XDECREF(batch);
  Py_DECREF(ws);
  Py_DECREF(codec);
  if (rv < 0 || flush(self) < 0)
    return NULL;
  Py_RETURN_NONE;
}

static PyObject *carrier_ws_send(PyObject *self_, PyObject *const *args, Py_ssize_t nargs) {
  CarrierObject *self = (CarrierObject *)self_;
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "_ws_send(sid, message)");
    return NULL;
  }
  if (IS_NONE(self->codec) || !h2ws_py_codec_ws(self->codec)) {
    PyErr_SetString(PyExc_RuntimeError, "the connection carries no WebSocket");
    return NULL;
  }
  PyObject *codec = Py_NewRef(self->codec);
  Py_ssize_t pending = h2ws_py_codec_send(codec, args[1]);
  Py_DECREF(codec);
  if (pending < 0 || queued(self, pending) < 0)
    return NULL;
  return PyBool_FromLong(self->write_paused);
}

static PyObject *carrier_queued(PyObject *self_, PyObject *arg) {
  Py_ssize_t pending = PyLong_AsSsize_t(arg);
  if (pending == -1 && PyErr_Occurred())
    return NULL;
  if (queued((CarrierObject *)self_, pending) < 0)
    return NULL;
  Py_RETURN_NONE;
}

static PyObject *carrier_flush(PyObject *self_, PyObject *unused) {
  (void)unused;
  if (flush((CarrierObject *)self_) < 0)
    return NULL;
  Py_RETURN_NONE;
}

static PyObject *get_transport(PyObject *self_, void *c) {
  (void)c;
  CarrierObject *self = (CarrierObject *)self_;
  return Py_NewRef(self->transport ? self->transport : Py_None);
}

static int set_transport(PyObject *self_, PyObject *value, void *c) {
  (void)c;
  CarrierObject *self = (CarrierObject *)self_;
  Py_XSETREF(self->transport, Py_XNewRef(value));
  Py_CLEAR(self->write); /* the cached methods were the old transport's */
  Py_CLEAR(self->buffered);
  return 0;
}

static PyMethodDef carrier_methods[] = {
    {"get_buffer", carrier_get_buffer, METH_O,
     "asyncio.BufferedProtocol: the read buffer, _view."},
    {"buffer_updated", carrier_buffer_updated, METH_O,
     "asyncio.BufferedProtocol: nbytes new bytes in _view. Before the upgrade (or while "
     "lingering) calls _http_received(nbytes); then parses them, dispatches every event "
     "(messages to the protocol's message_received, the rest to _ws_control), resumes the "
     "recv() waiters of _wake_batch, and writes everything that was sent in one write."},
    {"_ws_send", (PyCFunction)(void (*)(void))carrier_ws_send, METH_FASTCALL,
     "_ws_send(sid, message) -> bool: frames the message; True if writing is paused."},
    {"_queued", carrier_queued, METH_O,
     "_queued(pending): schedules a flush for the loop tick, or flushes at once when the "
     "pending bytes would take the socket's buffer over _write_limit."},
    {"_flush", carrier_flush, METH_NOARGS,
     "_flush(): writes what the codec has (closing after it if asked)."},
    {NULL, NULL, 0, NULL}};

static PyMemberDef carrier_members[] = {
    {"_codec", T_OBJECT, offsetof(CarrierObject, codec), 0, NULL},
    {"_ws", T_OBJECT, offsetof(CarrierObject, ws), 0, NULL},
    {"_view", T_OBJECT, offsetof(CarrierObject, view), 0, NULL},
    {"_loop", T_OBJECT, offsetof(CarrierObject, loop), 0, NULL},
    {"_flush_handle", T_OBJECT, offsetof(CarrierObject, flush_handle), 0, NULL},
    {"_wake_batch", T_OBJECT, offsetof(CarrierObject, batch), 0, NULL},
    {"_write_limit", T_PYSSIZET, offsetof(CarrierObject, write_limit), 0, NULL},
    {"_lost", T_BOOL, offsetof(CarrierObject, lost), 0, NULL},
    {"_write_paused", T_BOOL, offsetof(CarrierObject, write_paused), 0, NULL},
    {"_dispatching", T_BOOL, offsetof(CarrierObject, dispatching), 0, NULL},
    {"_lingering", T_BOOL, offsetof(CarrierObject, lingering), 0, NULL},
    {"_close_after_flush", T_BOOL, offsetof(CarrierObject, close_after_flush), 0, NULL},
    {"_closes_first", T_BOOL, offsetof(CarrierObject, closes_first), 0, NULL},
    {NULL, 0, 0, 0, NULL}};

static PyGetSetDef carrier_getset[] = {
    {"_transport", get_transport, set_transport, "the socket's asyncio transport, or None", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyType_Slot carrier_slots[] = {
    {Py_tp_new, carrier_new},
    {Py_tp_dealloc, carrier_dealloc},
    {Py_tp_traverse, carrier_traverse},
    {Py_tp_clear, carrier_clear},
    {Py_tp_methods, carrier_methods},
    {Py_tp_members, carrier_members},
    {Py_tp_getset, carrier_getset},
    {Py_tp_doc, "The per-message path of a WebSocket on an HTTP/1.1 connection: the base of "
                "h2ws.h1ws.H1WebSocketCarrier."},
    {0, NULL}};

static PyType_Spec carrier_spec = {"h2ws._core.H1Carrier", sizeof(CarrierObject), 0,
                                   Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
                                   carrier_slots};

int h2ws_py_carrier_add(PyObject *m, module_state *st) {
  carrier_names *n = PyMem_Calloc(1, sizeof *n);
  if (!n) {
    PyErr_NoMemory();
    return -1;
  }
  st->carrier_names = n;
  struct {
    PyObject **slot;
    const char *s;
  } names[] = {{&n->http_received, "_http_received"},
               {&n->reading_paused, "_reading_paused"},
               {&n->protocol, "_protocol"},
               {&n->message_received, "message_received"},
               {&n->on_message, "_on_message"},
               {&n->ws_control, "_ws_control"},
               {&n->cancel, "cancel"},
               {&n->close_transport, "_close_transport"},
               {&n->write, "write"},
               {&n->get_write_buffer_size, "get_write_buffer_size"},
               {&n->call_soon, "call_soon"},
               {&n->flush, "_flush"}};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    *names[i].slot = PyUnicode_InternFromString(names[i].s);
    if (!*names[i].slot)
      return -1;
  }
  PyTypeObject *tp = (PyTypeObject *)PyType_FromModuleAndSpec(m, &carrier_spec, NULL);
  if (!tp)
    return -1;
  int rv = PyModule_AddType(m, tp);
  Py_DECREF(tp);
  return rv;
}

void h2ws_py_carrier_names_free(module_state *st) {
  carrier_names *n = st->carrier_names;
  if (!n)
    return;
  PyObject **all[] = {&n->http_received,  &n->reading_paused, &n->protocol,
                      &n->message_received, &n->on_message,   &n->ws_control,
                      &n->cancel,           &n->close_transport, &n->write,
                      &n->get_write_buffer_size, &n->call_soon, &n->flush};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    Py_CLEAR(*all[i]);
  PyMem_Free(n);
  st->carrier_names = NULL;
}
