/*
 * binding.h - what the files of csrc/py share: the module state, the core
 * allocator backed by PyMem_Raw*, and the one place core errors become
 * Python exceptions.
 */
#ifndef H2WS_BINDING_H
#define H2WS_BINDING_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "../core/mem.h"
#include "../core/ws.h"

typedef struct {
  PyTypeObject *codec_type;
  PyTypeObject *connection_type;
  PyTypeObject *piece_type; /* data_to_write()'s pieces of messages (connection.c) */
  PyObject *protocol_error; /* h2ws.exceptions.ProtocolError */
  PyObject *invalid_state;  /* h2ws.exceptions.InvalidState */
  PyObject *payload_too_big;
  void *carrier_names; /* carrier.c's interned attribute names (owned) */
} module_state;

extern struct PyModuleDef h2ws_py_module_def;
extern const h2ws_mem h2ws_py_mem;

/* The codec's allocator for a large message that arrives whole in one frame
 * (h2ws_ws_config.whole_mem): each allocation is the buffer of a new bytes
 * object, so the message is handed to Python without a copy
 * (h2ws_py_whole_message). Needs the GIL, as every call into the core does. */
extern const h2ws_mem h2ws_py_whole_mem;

/* A new bytes object of n bytes, contents unset (PyBytes_FromStringAndSize
 * with NULL); a large one asks for transparent huge pages. NULL with an
 * exception set on failure. */
PyObject *h2ws_py_bytes_new(size_t n);

/* Takes the bytes object holding `buf` (an h2ws_buf on h2ws_py_whole_mem,
 * nothing consumed from its head), shrunk to buf->len bytes; `buf` is left
 * empty. A new reference, or NULL with an exception set. */
PyObject *h2ws_py_whole_take(h2ws_buf *buf);

/* The bytes object whose buffer is `data` (an h2ws_py_whole_mem allocation
 * of exactly `len` bytes, still owned by the codec): a new reference. */
PyObject *h2ws_py_whole_message(const uint8_t *data, size_t len);

/* The module state reached from an instance of one of the module's types. */
module_state *h2ws_py_state_of(PyObject *self);

/* Maps a negative core error code to a Python exception; returns NULL.
 * `what` (may be NULL) replaces the generic message. */
PyObject *h2ws_py_raise(module_state *st, int err, const char *what);

/* The `code` argument of the close() methods: None gives 0 (a close frame
 * without a code), an int must be 1..65535 (ValueError otherwise). Returns 0,
 * or -1 with an exception set. `obj` is borrowed. */
int h2ws_py_close_code(PyObject *obj, unsigned *code);

/* WebSocketCodec (module.c), for the carrier (carrier.c). */

/* The codec state of `obj` if it is a WebSocketCodec, else NULL (no
 * exception). Borrowed: lives as long as `obj`. */
h2ws_ws *h2ws_py_codec_ws(PyObject *obj);

/* WebSocketCodec.send(message) on `codec` (a WebSocketCodec): returns the
 * bytes now waiting in its output, or -1 with an exception set. */
Py_ssize_t h2ws_py_codec_send(PyObject *codec, PyObject *message);

/* WebSocketCodec.data_to_send() on `codec`: a new bytes object (maybe empty),
 * or NULL with an exception set. */
PyObject *h2ws_py_codec_take(PyObject *codec);

/* The message of a TEXT or BINARY event (str or bytes; a whole_mem buffer is
 * taken over without a copy): a new reference, or NULL with an exception set. */
PyObject *h2ws_py_codec_message(const h2ws_ws_event *ev);

/* The tuple WebSocketCodec.receive_data() returns for the event `ev`: a new
 * reference, or NULL with an exception set. */
PyObject *h2ws_py_codec_event(const h2ws_ws_event *ev);

/* WakeBatch (connection.c), for the carrier. */

/* Sets `batch`'s active flag when it is a WakeBatch (anything else, e.g.
 * None, is ignored). */
void h2ws_py_batch_set_active(PyObject *batch, int active);

/* Ends a dispatch: clears the active flag and, if waiters were resolved
 * meanwhile, resumes their tasks (WakeBatch.run()). Keeps an exception that
 * is already set unless run() raises. Returns 0, or -1 with an exception set
 * (the one already set, or run()'s). */
int h2ws_py_batch_end(PyObject *batch);

/* Adds the H1Carrier type to the module (carrier.c). */
int h2ws_py_carrier_add(PyObject *module, module_state *st);

/* Frees what h2ws_py_carrier_add put in `st`; call it when the module is
 * freed. */
void h2ws_py_carrier_names_free(module_state *st);

/* Adds the H2Connection type to the module (connection.c). */
int h2ws_py_connection_add(PyObject *module, module_state *st);

#endif
