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
  PyObject *protocol_error; /* h2ws.exceptions.ProtocolError */
  PyObject *invalid_state;  /* h2ws.exceptions.InvalidState */
  PyObject *payload_too_big;
} module_state;

extern struct PyModuleDef h2ws_py_module_def;
extern const h2ws_mem h2ws_py_mem;

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
