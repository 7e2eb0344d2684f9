/*
 * bench.h - benchmark-only functions of h2ws._core (not public API).
 *
 * They time the C core without creating Python objects in the loop, so
 * benchmarks/bench_codec.py can tell the parser's own cost from the cost
 * of the binding. Include after Python.h.
 */
#ifndef H2WS_PY_BENCH_H
#define H2WS_PY_BENCH_H

/*
 * bench_parse(data, iterations, client=False) -> float
 *
 * Parses `data` (a bytes-like object, borrowed for the call) `iterations`
 * times with h2ws_ws_recv, each time with a freshly initialised h2ws_ws in
 * the given role and default limits, and returns the seconds taken
 * (CLOCK_MONOTONIC, GIL released). Raises ValueError if the input yields
 * an error event, a close frame or ends inside a frame.
 */
PyObject *h2ws_py_bench_parse(PyObject *module, PyObject *args, PyObject *kwargs);

/* The module_methods entry of bench_parse. */
#define H2WS_PY_BENCH_METHODS                                                                      \
  {"bench_parse", (PyCFunction)(void (*)(void))h2ws_py_bench_parse, METH_VARARGS | METH_KEYWORDS, \
   "bench_parse(data, iterations, client=False) -> float: seconds to parse data `iterations` "    \
   "times in C, making no Python objects (benchmarks only)."},

#endif
