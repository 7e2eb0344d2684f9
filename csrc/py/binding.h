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

typedef struct {
  PyTypeObject *codec_type;
  PyTypeObject *connection_type;
  PyTypeObject *piece_type; /* data_to_write()'s pieces of messages (connection.c) */
  PyObject *protocol_error; /* h2ws.exceptions.ProtocolError */
  PyObject *invalid_state;  /* h2ws.exceptions.InvalidState */
  PyObject *payload_too_big;
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

/* Adds the H2Connection type to the module (connection.c). */
int h2ws_py_connection_add(PyObject *module, module_state *st);

#endif
