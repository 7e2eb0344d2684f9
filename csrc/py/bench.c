/*
 * bench.c - benchmark-only functions of h2ws._core; see bench.h.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <time.h>

#include "../core/error.h"
#include "../core/ws.h"
#include "bench.h"

static double monotonic_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Runs the parser over the whole input once. Returns the number of events,
 * or -1 with *why set if the input is not a clean run of messages. */
static long parse_once(const h2ws_ws_config *cfg, const uint8_t *data, size_t len,
                       const char **why) {
  h2ws_ws ws;
  long events = 0;
  h2ws_ws_init(&ws, cfg, NULL, NULL);
  while (len) {
    h2ws_ws_event ev;
    size_t used;
    if (h2ws_ws_recv(&ws, data, len, &used, &ev) < 0) {
      *why = "out of memory";
      events = -1;
      break;
    }
    data += used;
    len -= used;
    if (ev.type == H2WS_WS_EV_ERROR || ev.type == H2WS_WS_EV_CLOSE) {
      *why = ev.type == H2WS_WS_EV_ERROR ? ev.reason : "close frame in the input";
      events = -1;
      break;
    }
    if (ev.type != H2WS_WS_EV_NONE)
      events++;
  }
  if (events >= 0 && ws.state != H2WS_WS_ST_HEADER) {
    *why = "input ends inside a frame";
    events = -1;
  }
  h2ws_ws_free(&ws);
  return events;
}

PyObject *h2ws_py_bench_parse(PyObject *module, PyObject *args, PyObject *kwargs) {
  (void)module;
  static char *kwlist[] = {"data", "iterations", "client", NULL};
  Py_buffer data;
  Py_ssize_t iterations;
  int client = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*n|p:bench_parse", kwlist, &data, &iterations,
                                   &client))
    return NULL;
  if (iterations < 1) {
    PyBuffer_Release(&data);
    PyErr_SetString(PyExc_ValueError, "iterations must be at least 1");
    return NULL;
  }
  h2ws_ws_config cfg;
  h2ws_ws_config_init(&cfg);
  cfg.client = client;
  const char *why = NULL;
  double elapsed = 0.0;
  Py_BEGIN_ALLOW_THREADS;
  double start = monotonic_seconds();
  for (Py_ssize_t i = 0; i < iterations && !why; i++)
    parse_once(&cfg, data.buf, (size_t)data.len, &why);
  elapsed = monotonic_seconds() - start;
  Py_END_ALLOW_THREADS;
  PyBuffer_Release(&data);
  if (why) {
    PyErr_Format(PyExc_ValueError, "bench_parse: %s", why);
    return NULL;
  }
  return PyFloat_FromDouble(elapsed);
}
